"""Vector search in the database itself: sqlite-vec on SQLite, pgvector (HNSW) on PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, cast, func, literal_column
from sqlalchemy.types import Float, LargeBinary

from awe.ai.vectors import Hit, RowsIndex, SearchFilter, candidates
from awe.storage.knowledge_models import Chunk


class SqliteVecIndex(RowsIndex):
    """Exact search in SQL: sqlite-vec's ``vec_distance_cosine`` over the stored float32 bytes."""

    name = "sqlite-vec"

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
        """The nearest chunks by cosine distance."""
        q = np.asarray(query, dtype=np.float32)
        distance = func.vec_distance_cosine(
            literal_column("chunks.embedding"), bindparam("q", q.tobytes(), type_=LargeBinary)
        ).label("distance")
        statement = (
            candidates(
                [Chunk.id, distance],
                project_key=project_key,
                version=version,
                dim=len(q),
                where=where,
            )
            .order_by(distance, Chunk.id)
            .limit(top_k)
        )
        return [Hit(row.id, 1.0 - float(row.distance)) for row in conn.execute(statement)]


class PgVectorIndex(RowsIndex):
    """pgvector's cosine distance; the HNSW index of the vector's size serves the ORDER BY."""

    name = "pgvector"

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
        """The nearest chunks by cosine distance (approximate where an HNSW index exists)."""
        from pgvector.sqlalchemy import VECTOR

        q = np.asarray(query, dtype=np.float32)
        sized = VECTOR(len(q))
        # The same expression as the partial index `(embedding::vector(N))`, so the planner uses it.
        column = cast(literal_column("chunks.embedding"), sized)
        distance = column.op("<=>", return_type=Float())(bindparam("q", q, type_=sized)).label(
            "distance"
        )
        statement = (
            candidates(
                [Chunk.id, distance],
                project_key=project_key,
                version=version,
                dim=len(q),
                where=where,
            )
            .order_by(distance)
            .limit(top_k)
        )
        return [Hit(row.id, 1.0 - float(row.distance)) for row in conn.execute(statement)]
