"""vector deletes: the outbox of deletes an external vector index still owes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "vector_deletes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
            nullable=False,
        ),
        sa.Column("chunk_ids", sa.JSON(), nullable=False),
        sa.Column("document_ids", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_deletes")),
    )  # fmt: skip
    op.create_index("ix_vector_deletes_next_at", "vector_deletes", ["next_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_vector_deletes_next_at", table_name="vector_deletes")
    op.drop_table("vector_deletes")
