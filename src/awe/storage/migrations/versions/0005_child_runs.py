"""child runs (runs.parent_step_id); schedules of stored workflows pin version and project

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_step_id", sa.String(length=36), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_runs_parent_step_id"), ["parent_step_id"], unique=False
        )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workflow_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("project_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_schedules_project_id_projects"),
            "projects",
            ["project_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_schedules_project_id_projects"), type_="foreignkey")
        batch_op.drop_column("project_id")
        batch_op.drop_column("workflow_version")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_parent_step_id"))
        batch_op.drop_column("parent_step_id")
