"""The optional Qdrant backend (qdrant-client): a server at AWE_QDRANT_URL, or local mode.

Qdrant holds a copy of the chunk vectors, one collection per vector size, the chunk's id as the
point id and what searches filter on as payload. Local mode (a folder in AWE_HOME) is for one
process at a time; several workers need a Qdrant server.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from sqlalchemy import Connection, select

from awe.ai.vectors import Hit, SearchFilter, StoredVector
from awe.core.config import Settings
from awe.core.errors import DependencyError
from awe.storage.knowledge_models import Document


def _sdk() -> Any:
    try:
        from qdrant_client import QdrantClient, models
    except ImportError:
        raise DependencyError(
            "AWE_VECTOR_BACKEND=qdrant needs the optional package qdrant-client"
            " (pip install 'awe[qdrant]')"
        ) from None
    return QdrantClient, models


class QdrantIndex:
    """Search in Qdrant; the database keeps the vectors it copies."""

    name = "qdrant"
    _shared: ClassVar[dict[str, QdrantIndex]] = {}
    _lock = threading.Lock()

    def __init__(self, settings: Settings) -> None:
        client_class, self.models = _sdk()
        if settings.qdrant_url:
            # No version check at construction: it runs in a thread of its own and only
            # warns; a server that is down shows in the first call (and in awe doctor).
            self.client = client_class(
                url=settings.qdrant_url, timeout=30, check_compatibility=False
            )
        else:
            self.client = client_class(path=str(settings.home / "qdrant"))
        self._collections: set[str] = set()

    @classmethod
    def shared(cls, settings: Settings) -> QdrantIndex:
        """One client per server (or local folder) per process."""
        key = settings.qdrant_url or str(settings.home.resolve() / "qdrant")
        with cls._lock:
            if key not in cls._shared:
                cls._shared[key] = cls(settings)
            return cls._shared[key]

    @classmethod
    def opened(cls, settings: Settings) -> bool:
        """Whether this process has a client for these settings' Qdrant already."""
        key = settings.qdrant_url or str(settings.home.resolve() / "qdrant")
        with cls._lock:
            return key in cls._shared

    @classmethod
    def close_all(cls) -> None:
        """Close this process's clients (a local-mode folder is then free for another process)."""
        with cls._lock:
            for index in cls._shared.values():
                index.client.close()
            cls._shared.clear()

    def _collection(self, dim: int) -> str:
        name = f"awe_chunks_{dim}"
        if name not in self._collections:
            if not self.client.collection_exists(name):
                self.client.create_collection(
                    name,
                    vectors_config=self.models.VectorParams(
                        size=dim, distance=self.models.Distance.COSINE
                    ),
                )
            self._collections.add(name)
        return name

    def added(self, vectors: list[StoredVector]) -> None:
        """Upsert the chunks' vectors (point id = chunk id: a re-run overwrites)."""
        by_dim: dict[int, list[StoredVector]] = {}
        for item in vectors:
            by_dim.setdefault(len(item.vector), []).append(item)
        for dim, items in by_dim.items():
            self.client.upsert(
                self._collection(dim),
                points=[
                    self.models.PointStruct(
                        id=item.chunk_id,
                        vector=[float(x) for x in item.vector],
                        payload={
                            "project_key": item.project_key,
                            "version": item.version,
                            "document_id": item.document_id,
                        },
                    )
                    for item in items
                ],
            )

    def removed(self, document_ids: list[str]) -> None:
        """Delete the documents' points from every collection."""
        if not document_ids:
            return
        condition = self.models.FieldCondition(
            key="document_id", match=self.models.MatchAny(any=list(document_ids))
        )
        for name in self._names():
            self.client.delete(
                name,
                points_selector=self.models.FilterSelector(
                    filter=self.models.Filter(must=[condition])
                ),
            )

    def deleted_chunks(self, chunk_ids: list[str]) -> None:
        """Delete these chunks' points from every collection."""
        if not chunk_ids:
            return
        for name in self._names():
            self.client.delete(
                name, points_selector=self.models.PointIdsList(points=list(chunk_ids))
            )

    def _names(self) -> list[str]:
        names = [c.name for c in self.client.get_collections().collections]
        return [name for name in names if name.startswith("awe_chunks_")]

    def points(self) -> dict[str, list[str]]:
        """Every point id, by collection (for ``awe knowledge gc``)."""
        found: dict[str, list[str]] = {}
        for name in self._names():
            ids: list[str] = []
            offset = None
            while True:
                page, offset = self.client.scroll(
                    name, limit=1000, offset=offset, with_payload=False, with_vectors=False
                )
                ids += [str(point.id) for point in page]
                if offset is None:
                    break
            found[name] = ids
        return found

    def delete_points(self, collection: str, ids: list[str]) -> None:
        """Delete points by id from one collection."""
        if ids:
            self.client.delete(collection, points_selector=self.models.PointIdsList(points=ids))

    def count(self, document_id: str) -> int:
        """How many points a document has, in every collection (an exact count)."""
        condition = self.models.FieldCondition(
            key="document_id", match=self.models.MatchValue(value=document_id)
        )
        return sum(
            self.client.count(
                name, count_filter=self.models.Filter(must=[condition]), exact=True
            ).count
            for name in self._names()
        )

    def present(self, ids: list[str]) -> int:
        """How many of these points exist, in every collection (looked up by id)."""
        found = 0
        for name in self._names():
            for start in range(0, len(ids), 1000):
                found += len(
                    self.client.retrieve(
                        name, ids=ids[start : start + 1000], with_payload=False, with_vectors=False
                    )
                )
        return found

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
        """Nearest points with the project's and version's payload (and the filter's documents)."""
        m = self.models
        must = [
            m.FieldCondition(key="project_key", match=m.MatchValue(value=project_key)),
            m.FieldCondition(key="version", match=m.MatchValue(value=version)),
        ]
        documents = list(where.document_ids)
        if where.names or where.mimes:
            statement = select(Document.id).where(Document.project_key == project_key)
            if where.names:
                statement = statement.where(Document.name.in_(list(where.names)))
            if where.mimes:
                statement = statement.where(Document.mime.in_(list(where.mimes)))
            named = list(conn.execute(statement).scalars())
            documents = [d for d in documents if d in named] if documents else named
            if not documents:
                return []
        if documents:
            must.append(m.FieldCondition(key="document_id", match=m.MatchAny(any=documents)))
        vector = [float(x) for x in query]
        answer = self.client.query_points(
            self._collection(len(vector)),
            query=vector,
            limit=top_k,
            query_filter=m.Filter(must=must),
        )
        return [Hit(str(point.id), float(point.score)) for point in answer.points]
