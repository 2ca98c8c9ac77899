"""Vector search backends behind one interface: sqlite-vec, numpy (exact), pgvector, Qdrant.

Vectors are stored with their chunks (the database is the source of truth). sqlite-vec and
pgvector search those rows in SQL; numpy reads them and searches exactly in memory; Qdrant keeps
a copy, written after each ingest and rebuilt with ``awe knowledge reindex``. Scores are cosine
similarities (1 is identical), so results compare across backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Connection, Select, select

from awe.core.config import Settings
from awe.core.errors import ConfigurationError, DependencyError
from awe.storage.database import Database, has_vector_functions
from awe.storage.knowledge_models import Chunk, Document


@dataclass(frozen=True)
class SearchFilter:
    """Which chunks a search may return: of these documents, names or MIME types."""

    document_ids: Sequence[str] = ()
    names: Sequence[str] = ()
    mimes: Sequence[str] = ()


@dataclass(frozen=True)
class Hit:
    """A chunk and its cosine similarity to the query."""

    chunk_id: str
    score: float


@dataclass(frozen=True)
class StoredVector:
    """A chunk's vector with what a search filters on (for indexes that keep a copy)."""

    chunk_id: str
    document_id: str
    project_key: str
    version: str
    vector: Any = field(repr=False)


class VectorIndex(Protocol):
    """A way to find the chunks nearest a query vector."""

    name: str

    def search(
        self,
        conn: Connection,
        query: Any,
        *,
        project_key: str,
        version: str,
        top_k: int,
        where: SearchFilter,
    ) -> list[Hit]:
        """The ``top_k`` best chunks, best first."""
        ...

    def added(self, vectors: list[StoredVector]) -> None:
        """Chunks were stored (after their transaction committed)."""
        ...

    def removed(self, document_ids: list[str]) -> None:
        """Documents (and their chunks) were deleted."""
        ...

    def deleted_chunks(self, chunk_ids: list[str]) -> None:
        """Chunks were deleted (a document that shrank, or changed version)."""
        ...


def candidates(
    columns: Sequence[Any], *, project_key: str, version: str, dim: int, where: SearchFilter
) -> Select[Any]:
    """SELECT ``columns`` of the chunks a search may return."""
    statement = select(*columns).where(
        Chunk.project_key == project_key, Chunk.embedding_version == version, Chunk.dim == dim
    )
    if where.document_ids:
        statement = statement.where(Chunk.document_id.in_(list(where.document_ids)))
    if where.names or where.mimes:
        statement = statement.join(Document, Document.id == Chunk.document_id)
        if where.names:
            statement = statement.where(Document.name.in_(list(where.names)))
        if where.mimes:
            statement = statement.where(Document.mime.in_(list(where.mimes)))
    return statement


class RowsIndex:
    """An index that is the chunk rows themselves: nothing to copy, nothing to delete."""

    def added(self, vectors: list[StoredVector]) -> None:
        """Nothing to do: the rows are the index."""

    def removed(self, document_ids: list[str]) -> None:
        """Nothing to do: the rows are the index."""

    def deleted_chunks(self, chunk_ids: list[str]) -> None:
        """Nothing to do: the rows are the index."""


class NumpyIndex(RowsIndex):
    """Exact search in memory over the stored vectors: the fallback that always works."""

    name = "numpy"

    def search(
        self,
        conn: Connection,
        query: Any,
        *,
        project_key: str,
        version: str,
        top_k: int,
        where: SearchFilter,
    ) -> list[Hit]:
        """Read the candidates' vectors and rank them by dot product (they are unit length)."""
        q = np.asarray(query, dtype=np.float32)
        rows = conn.execute(
            candidates(
                [Chunk.id, Chunk.embedding],
                project_key=project_key,
                version=version,
                dim=len(q),
                where=where,
            )
        ).all()
        if not rows:
            return []
        matrix = np.vstack([row.embedding for row in rows])
        scores = matrix @ q
        best = np.argsort(-scores, kind="stable")[:top_k]
        return [Hit(rows[i].id, float(scores[i])) for i in best]


def choose_index(db: Database, settings: Settings) -> VectorIndex:
    """The backend AWE_VECTOR_BACKEND names (auto: pgvector, or sqlite-vec, or numpy)."""
    backend = settings.vector_backend
    if backend == "auto":
        if db.dialect == "postgresql":
            backend = "pgvector"
        else:
            backend = "sqlite-vec" if has_vector_functions(db) else "numpy"
    if backend == "numpy":
        return NumpyIndex()
    if backend == "pgvector":
        if db.dialect != "postgresql":
            raise ConfigurationError("AWE_VECTOR_BACKEND=pgvector needs a PostgreSQL database")
        from awe.ai.vectors.sql import PgVectorIndex

        return PgVectorIndex()
    if backend == "sqlite-vec":
        if not has_vector_functions(db):
            raise DependencyError(
                "AWE_VECTOR_BACKEND=sqlite-vec needs a SQLite database and the packages"
                " pysqlite3-binary and sqlite-vec (or use numpy)"
            )
        from awe.ai.vectors.sql import SqliteVecIndex

        return SqliteVecIndex()
    from awe.ai.vectors.qdrant import QdrantIndex

    return QdrantIndex.shared(settings)
