"""steps: index (run_id, status) in place of (run_id); the claim index in claim order again

Recording a batch of completions asks, per run, whether any step is still open and which
pending steps the batch may ready; with the run's steps indexed by state that reads the open
ones only, not every step of a wide run. Lookups by run alone use the unique (run_id, step_key)
or this index, so the table keeps as many indexes as before.

On SQLite, 0010 rebuilt the steps table and with it ix_steps_claim, from a reflection that
drops ``DESC``: the index lost the claim's order (priority DESC), and every claim sorted every
queued row (7 ms a claim at 5,000 queued, 29 ms at 20,000). It is made again in claim order. On
PostgreSQL it now holds only the queued rows (finished rows never enter it, and their dead
entries no longer slow the claim between vacuums), and the hot tables are vacuumed after 2 %
of their rows changed rather than the default 20 %.

On PostgreSQL the indexes are built inside the migration's transaction, not CONCURRENTLY: writes
to steps wait while they build (seconds per million steps); upgrade while the queue is quiet.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 18:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_CLAIM_COLUMNS: list[str | sa.ColumnElement[object]] = [
    "status",
    "queue",
    sa.literal_column("priority DESC"),
    "run_after",
    "id",
]
_HOT_TABLES = ("steps", "runs")


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_steps_run_status", "steps", ["run_id", "status"])
    op.drop_index("ix_steps_run_id", table_name="steps")
    op.drop_index("ix_steps_claim", table_name="steps")
    op.create_index(
        "ix_steps_claim",
        "steps",
        _CLAIM_COLUMNS,
        postgresql_where=sa.text("status = 'queued'"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in _HOT_TABLES:
            op.execute(
                f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.02,"
                " autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 1)"
            )


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        for table in _HOT_TABLES:
            op.execute(
                f"ALTER TABLE {table} RESET (autovacuum_vacuum_scale_factor,"
                " autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay)"
            )
    op.drop_index("ix_steps_claim", table_name="steps")
    op.create_index("ix_steps_claim", "steps", _CLAIM_COLUMNS)
    op.create_index("ix_steps_run_id", "steps", ["run_id"])
    op.drop_index("ix_steps_run_status", table_name="steps")
