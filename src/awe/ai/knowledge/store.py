"""The knowledge base's rows: storing documents, upserting chunks, reading what a search needs.

Helpers take a connection and do not commit; the ingest pipeline decides the transactions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from awe.ai.vectors import outbox
from awe.core.clock import utcnow
from awe.core.ids import new_id
from awe.storage.database import dialect_insert
from awe.storage.engine_models import Run
from awe.storage.knowledge_models import Chunk, Document

_DOCUMENT_COLUMNS = (
    Document.id,
    Document.project_key,
    Document.name,
    Document.source,
    Document.mime,
    Document.size,
    Document.sha256,
    Document.status,
    Document.error,
    Document.chunk_count,
    Document.embedding_version,
    Document.created_at,
    Document.updated_at,
    Document.ingested_at,
)


@dataclass(frozen=True)
class DocumentInfo:
    """A document as listed (without its bytes)."""

    id: str
    project_key: str
    name: str
    source: str
    mime: str
    size: int
    sha256: str
    status: str
    error: str | None
    chunk_count: int
    embedding_version: str | None
    created_at: datetime
    updated_at: datetime
    ingested_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = dict(self.__dict__)
        for key in ("created_at", "updated_at", "ingested_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to store."""

    index: int
    text: str
    content_hash: str
    vector: Any


def content_hash(text: str) -> str:
    """The chunk's identity for dedupe: sha256 of its text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_project_key(conn: Connection, run_id: str) -> str:
    """The project key ('' for none) of the run a step belongs to."""
    return str(conn.execute(select(Run.project_id).where(Run.id == run_id)).scalar() or "")


def put_document(
    conn: Connection,
    *,
    project_key: str,
    name: str,
    source: str,
    data: bytes,
    mime: str,
    version: str,
) -> tuple[str, bool]:
    """Store (or replace, by name) a document's bytes; (id, whether it needs an ingest).

    The same bytes already ingested with the current embedding version need nothing.
    """
    digest = hashlib.sha256(data).hexdigest()
    now = utcnow()
    existing = conn.execute(
        select(Document.id, Document.sha256, Document.status, Document.embedding_version).where(
            Document.project_key == project_key, Document.name == name
        )
    ).first()
    if existing is not None:
        if (
            existing.sha256 == digest
            and existing.status == "ready"
            and existing.embedding_version == version
        ):
            return str(existing.id), False
        conn.execute(
            update(Document)
            .where(Document.id == existing.id)
            .values(
                source=source,
                content=data,
                mime=mime,
                size=len(data),
                sha256=digest,
                status="pending",
                error=None,
                updated_at=now,
            )
        )
        return str(existing.id), True
    document_id = new_id()
    conn.execute(
        insert(Document).values(
            id=document_id,
            project_key=project_key,
            name=name,
            source=source,
            content=data,
            mime=mime,
            size=len(data),
            sha256=digest,
            status="pending",
            chunk_count=0,
            created_at=now,
            updated_at=now,
        )
    )
    return document_id, True


def get_documents(
    conn: Connection, *, project_key: str, refs: list[str] | None = None
) -> list[DocumentInfo]:
    """A project's documents (those whose id or name is in ``refs``, when given), by name."""
    statement = select(*_DOCUMENT_COLUMNS).where(Document.project_key == project_key)
    if refs is not None:
        statement = statement.where(Document.id.in_(refs) | Document.name.in_(refs))
    rows = conn.execute(statement.order_by(Document.name)).all()
    return [DocumentInfo(**row._mapping) for row in rows]


def document_content(conn: Connection, document_id: str) -> Any:
    """The row a pipeline needs: id, project, name, mime, content."""
    return conn.execute(
        select(
            Document.id, Document.project_key, Document.name, Document.mime, Document.content
        ).where(Document.id == document_id)
    ).one_or_none()


def set_status(conn: Connection, document_id: str, status: str, **values: Any) -> None:
    """Move a document to ``status`` (with more column values)."""
    conn.execute(
        update(Document)
        .where(Document.id == document_id)
        .values(status=status, updated_at=utcnow(), **values)
    )


def stored_hashes(conn: Connection, document_id: str, version: str) -> dict[int, str]:
    """chunk index → content hash of what is stored for a document at ``version``."""
    rows = conn.execute(
        select(Chunk.chunk_index, Chunk.content_hash).where(
            Chunk.document_id == document_id, Chunk.embedding_version == version
        )
    ).all()
    return {row.chunk_index: row.content_hash for row in rows}


def known_vectors(conn: Connection, hashes: list[str], version: str) -> dict[str, Any]:
    """Vectors already computed for these content hashes (any document), to reuse."""
    found: dict[str, Any] = {}
    for start in range(0, len(hashes), 500):
        rows = conn.execute(
            select(Chunk.content_hash, Chunk.embedding).where(
                Chunk.content_hash.in_(hashes[start : start + 500]),
                Chunk.embedding_version == version,
            )
        ).all()
        for row in rows:
            found.setdefault(row.content_hash, row.embedding)
    return found


def upsert_chunks(
    conn: Connection,
    *,
    document_id: str,
    project_key: str,
    version: str,
    chunks: list[NewChunk],
) -> list[str]:
    """Insert or replace chunks by (document, index, version); returns their ids."""
    if not chunks:
        return []
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "document_id": document_id,
            "project_key": project_key,
            "chunk_index": c.index,
            "text": c.text,
            "content_hash": c.content_hash,
            "embedding_version": version,
            "dim": len(c.vector),
            "embedding": c.vector,
            "created_at": now,
        }
        for c in chunks
    ]
    statement = dialect_insert(conn)(Chunk).values(rows)
    upsert = statement.on_conflict_do_update(
        index_elements=["document_id", "chunk_index", "embedding_version"],
        set_={
            "text": statement.excluded.text,
            "content_hash": statement.excluded.content_hash,
            "dim": statement.excluded.dim,
            "embedding": statement.excluded.embedding,
        },
    ).returning(Chunk.id, Chunk.chunk_index)
    ids = {row.chunk_index: row.id for row in conn.execute(upsert)}
    return [ids[c.index] for c in chunks]


def prune_chunks(
    conn: Connection, document_id: str, *, version: str, count: int, index: object = None
) -> None:
    """Drop a document's chunks past ``count`` at ``version``, and those of other versions (an
    external index is owed the delete of their points: see awe.ai.vectors.outbox)."""
    stale = (Chunk.document_id == document_id) & (
        (Chunk.embedding_version != version) | (Chunk.chunk_index >= count)
    )
    ids = list(conn.execute(select(Chunk.id).where(stale)).scalars())
    if ids:
        conn.execute(delete(Chunk).where(Chunk.id.in_(ids)))
        outbox.enqueue(conn, index, chunk_ids=ids)


def chunk_details(conn: Connection, chunk_ids: list[str]) -> dict[str, Any]:
    """id → (text, chunk_index, document id, name and source) for search results."""
    if not chunk_ids:
        return {}
    rows = conn.execute(
        select(
            Chunk.id,
            Chunk.text,
            Chunk.chunk_index,
            Chunk.document_id,
            Document.name,
            Document.source,
        )
        .join(Document, Document.id == Chunk.document_id)
        .where(Chunk.id.in_(chunk_ids))
    ).all()
    return {row.id: row for row in rows}


@dataclass(frozen=True)
class VersionCount:
    """Chunks (and their documents) at one embedding version, by the model that made them."""

    version: str
    model: str | None
    documents: int
    chunks: int


def versions(conn: Connection, project_key: str) -> list[VersionCount]:
    """The project's chunks per embedding version and model."""
    rows = conn.execute(
        select(
            Chunk.embedding_version,
            Document.embedding_model,
            func.count(func.distinct(Chunk.document_id)),
            func.count(Chunk.id),
        )
        .join(Document, Document.id == Chunk.document_id)
        .where(Chunk.project_key == project_key)
        .group_by(Chunk.embedding_version, Document.embedding_model)
        .order_by(Chunk.embedding_version, Document.embedding_model)
    ).all()
    return [VersionCount(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def behind(conn: Connection, project_key: str, version: str) -> list[tuple[str, str | None]]:
    """(name, version) of the project's ready documents embedded at another version than
    ``version``: a search at ``version`` cannot find them (from the documents' own record,
    not a scan of the chunks)."""
    rows = conn.execute(
        select(Document.name, Document.embedding_version)
        .where(
            Document.project_key == project_key,
            Document.status == "ready",
            Document.embedding_version != version,
        )
        .order_by(Document.name)
    ).all()
    return [(r[0], r[1]) for r in rows]
