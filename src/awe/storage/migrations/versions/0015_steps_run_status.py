"""steps: index (run_id, status) in place of (run_id)

Recording a batch of completions asks, per run, whether any step is still open and which
pending steps the batch may ready; with the run's steps indexed by state that reads the open
ones only, not every step of a wide run. Lookups by run alone use the unique (run_id, step_key)
or this index, so the table keeps as many indexes as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 18:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_steps_run_status", "steps", ["run_id", "status"])
    op.drop_index("ix_steps_run_id", table_name="steps")


def downgrade() -> None:
    """Revert this revision."""
    op.create_index("ix_steps_run_id", "steps", ["run_id"])
    op.drop_index("ix_steps_run_status", table_name="steps")
