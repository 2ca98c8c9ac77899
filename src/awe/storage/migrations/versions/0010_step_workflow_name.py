"""steps carry their run's workflow name, so the dead-letter queue groups without a join

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: add the column and fill it from each step's run."""
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("workflow_name", sa.String(100), nullable=True))
    op.execute(
        "UPDATE steps SET workflow_name = "
        "(SELECT runs.workflow_name FROM runs WHERE runs.id = steps.run_id)"
    )
    # Every step has a run (the foreign key cascades), so none is left empty: from now on an
    # insert that forgets the name fails loudly instead of dropping out of the filter.
    with op.batch_alter_table("steps") as batch:
        batch.alter_column("workflow_name", existing_type=sa.String(100), nullable=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("workflow_name")
