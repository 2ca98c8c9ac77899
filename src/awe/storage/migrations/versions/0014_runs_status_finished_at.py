"""runs: index (status, finished_at) in place of (status)

Retention reads finished runs oldest first; the wider index serves that and everything the
status index served, so the table keeps as many indexes as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 07:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_runs_status_finished_at", "runs", ["status", "finished_at"])
    op.drop_index("ix_runs_status", table_name="runs")


def downgrade() -> None:
    """Revert this revision."""
    op.create_index("ix_runs_status", "runs", ["status"])
    op.drop_index("ix_runs_status_finished_at", table_name="runs")
