"""safety: trusted runs and workflows, lease tokens and tries, per-run event numbers, secrets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:33:08.296557
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Projects owned by someone who is not an admin: what was pushed there was pushed by a member.
_MEMBER_PROJECTS = (
    "SELECT p.id FROM projects p JOIN users u ON u.id = p.owner_id WHERE u.role <> 'admin'"
)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "instance_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_state")),
    )
    op.create_table(
        "project_secrets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_key", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_secrets")),
        sa.UniqueConstraint(
            "project_key", "name", name=op.f("uq_project_secrets_project_key_name")
        ),
    )

    # Events: number each run's events in id order (the order they were read in until now).
    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
    # One pass over the table (a correlated subquery would number it once per row).
    op.execute(
        "UPDATE run_events SET seq = numbered.n FROM (SELECT id AS event_id,"
        " ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY id) AS n FROM run_events) AS numbered"
        " WHERE numbered.event_id = run_events.id"
    )
    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index(batch_op.f("ix_run_events_run_id_id"))
        batch_op.create_unique_constraint(batch_op.f("uq_run_events_run_id_seq"), ["run_id", "seq"])

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trusted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("depth", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("event_seq", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE runs SET event_seq = COALESCE("
        "(SELECT MAX(seq) FROM run_events WHERE run_events.run_id = runs.id), 0)"
    )

    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trusted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )

    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tries", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("lease_token", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("ref_nonce", sa.String(length=32), nullable=True))
    op.execute("UPDATE steps SET tries = attempt")
    # A step running on an old lease has no token: it is reaped, then runs again under one.

    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pushed_by", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("trusted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )

    # What lives in members' projects was put there by members: not trusted from now on.
    for table, column in (
        ("workflows", "project_key"),
        ("schedules", "project_id"),
        ("runs", "project_id"),
    ):
        # Only the constant names above go into the text; the value is a bound parameter.
        statement = f"UPDATE {table} SET trusted = :no WHERE {column} IN ({_MEMBER_PROJECTS})"  # noqa: S608
        op.execute(sa.text(statement).bindparams(no=False))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_column("trusted")
        batch_op.drop_column("pushed_by")

    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_column("ref_nonce")
        batch_op.drop_column("lease_token")
        batch_op.drop_column("tries")

    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_column("trusted")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("event_seq")
        batch_op.drop_column("depth")
        batch_op.drop_column("trusted")

    with op.batch_alter_table("run_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_run_events_run_id_seq"), type_="unique")
        batch_op.create_index(batch_op.f("ix_run_events_run_id_id"), ["run_id", "id"], unique=False)
        batch_op.drop_column("seq")

    op.drop_table("project_secrets")
    op.drop_table("instance_state")
