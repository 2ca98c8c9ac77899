"""documents.embedding_model: which embedder made a document's vectors

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 07:35:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("embedding_model", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("embedding_model")
