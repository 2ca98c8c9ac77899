"""The knowledge base's tables: documents (with their bytes) and their embedded chunks.

A chunk's vector lives in its row (pgvector's ``vector`` on PostgreSQL, float32 bytes on SQLite,
which sqlite-vec reads directly), written in the same transaction as its text; an external index
(Qdrant) is only ever a copy that can be rebuilt from these rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from awe.core.clock import utcnow
from awe.core.ids import new_id
from awe.storage.models import ID_LENGTH, Base
from awe.storage.privacy import SealedBytes
from awe.storage.types import UTCDateTime

#: Migrations create one HNSW index per vector size on PostgreSQL, named with this prefix.
HNSW_INDEX_PREFIX = "ix_chunks_hnsw_"


class Embedding(TypeDecorator[Any]):
    """A float32 vector: pgvector's ``vector`` on PostgreSQL, raw float32 bytes on SQLite."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """pgvector's type on PostgreSQL; bytes elsewhere."""
        if dialect.name == "postgresql":
            from pgvector.sqlalchemy import VECTOR

            return dialect.type_descriptor(VECTOR())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """A list or array in; what the column stores out."""
        if value is None:
            return None
        array = np.asarray(value, dtype=np.float32)
        return array if dialect.name == "postgresql" else array.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """A float32 numpy array."""
        if value is None:
            return None
        if isinstance(value, bytes | memoryview):
            return np.frombuffer(bytes(value), dtype=np.float32)
        return np.asarray(value, dtype=np.float32)


class Document(Base):
    """A document of a project's knowledge base, and where its ingest stands."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("project_key", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    #: The project's id, or '' outside any project (as for stored workflows).
    project_key: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    name: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(Text, default="")
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    #: pending → ingesting → ready | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    embedding_version: Mapped[str | None] = mapped_column(String(64))
    #: provider:model of the embedder that made its vectors (awe knowledge versions).
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    content: Mapped[bytes] = deferred(
        mapped_column(SealedBytes("documents.content"), nullable=False)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ingested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Chunk(Base):
    """A piece of a document's text (PII scrubbed) and its embedding."""

    __tablename__ = "chunks"
    __table_args__ = (
        # The idempotent upsert's key: a re-run of an ingest replaces, never doubles.
        UniqueConstraint("document_id", "chunk_index", "embedding_version"),
        Index("ix_chunks_search", "project_key", "embedding_version", "dim"),
        Index("ix_chunks_content_hash", "content_hash", "embedding_version"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    project_key: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    embedding_version: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[Any] = mapped_column(Embedding)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VectorDelete(Base):
    """A delete an external vector index (Qdrant) still owes: written in the transaction that
    deleted the rows, removed once the index has done it, retried until then (an outbox)."""

    __tablename__ = "vector_deletes"
    __table_args__ = (Index("ix_vector_deletes_next_at", "next_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    #: The chunks' points to delete, by id…
    chunk_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: …and every point of these documents.
    document_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Why the last attempt failed (the error's type and first line).
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
