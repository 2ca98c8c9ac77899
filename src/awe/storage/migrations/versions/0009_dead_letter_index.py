"""dead-letter index: the dead steps in death order, for the web UI's dead-letter pages

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index(
        "ix_steps_dead",
        "steps",
        ["status", "finished_at", "id"],
        postgresql_where=sa.text("status = 'dead'"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_steps_dead", table_name="steps")
