"""Ingesting a stored document: extract → scrub PII → chunk → embed → upsert, resumable.

Chunks are embedded and written in groups, each group in its own transaction, so a killed worker
loses at most the group in flight: the next attempt finds the chunks already stored (same index,
same content hash, same embedding version) and embeds only the rest. Upserts are keyed by
(document, chunk index, embedding version), so nothing is ever doubled. A chunk whose text was
embedded before (any document, same version) reuses that vector.

A document that cannot be read (a broken PDF, no text) is marked failed with the reason and the
others go on; a failure that may pass (the embedding provider is down) propagates, and the
engine retries the step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from awe.ai.embeddings import Embedder
from awe.ai.embeddings.batching import embed_all
from awe.ai.knowledge import store
from awe.ai.knowledge.chunking import chunk
from awe.ai.knowledge.extract import extract
from awe.ai.knowledge.validate import KIND_OF, DocumentRefused, check, files_under, read_bounded
from awe.ai.pii import scrub
from awe.ai.vectors import StoredVector, VectorIndex, outbox
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.storage.database import Database

Progress = Callable[[str, int, int], None]  # document name, chunks done, chunks in all


@dataclass(frozen=True)
class IngestResult:
    """What happened to one document."""

    document_id: str
    name: str
    status: str
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class StoredFiles:
    """Files read from disk into the knowledge base: what needs an ingest, what was refused."""

    to_ingest: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def store_files(
    db: Database,
    settings: Settings,
    paths: list[str],
    *,
    project_key: str,
    uploaded: bool = False,
    root: Path | None = None,
) -> StoredFiles:
    """Check and store files (folders: the files inside); each refusal kept with its reason.

    A document is named by its path, or by its file name alone when ``uploaded`` (the path is
    then a temporary copy of what a client sent). With ``root`` (ingest steps), every path must
    lie inside it, symbolic links resolved; sizes are checked before anything is read.
    """
    result = StoredFiles()
    for given, path in files_under(paths, root=root):
        name = path.name if uploaded else given
        try:
            data = read_bounded(name, path, max_bytes=settings.knowledge_max_bytes)
            checked = check(path.name, data, max_bytes=settings.knowledge_max_bytes)
        except DocumentRefused as exc:
            result.refused.append((name, exc.message))
            continue
        with db.write() as conn:
            document_id, needs_ingest = store.put_document(
                conn,
                project_key=project_key,
                name=name,
                source="upload" if uploaded else str(path.resolve()),
                data=data,
                mime=checked.mime,
                version=settings.embedding_version,
            )
        (result.to_ingest if needs_ingest else result.unchanged).append(document_id)
    return result


def kind_of(name: str) -> str:
    """How a document's text is extracted, by its name: pdf, html or text."""
    for extension, kind in KIND_OF.items():
        if name.lower().endswith(extension):
            return kind
    return "text"


def document_chunks(name: str, data: bytes, settings: Settings) -> list[str]:
    """The document's text, PII scrubbed (placeholders stable across it), cut into chunks."""
    text = extract(kind_of(name), data, name)
    scrubbed = scrub(text, phone_regions=tuple(settings.pii_phone_regions.split(","))).text
    return chunk(scrubbed, size=settings.rag_chunk_size, overlap=settings.rag_chunk_overlap)


def ingest_document(
    db: Database,
    settings: Settings,
    *,
    embedder: Embedder,
    index: VectorIndex,
    document_id: str,
    progress: Progress | None = None,
    check: Callable[[], None] | None = None,
) -> IngestResult:
    """Ingest one stored document; see the module's docstring for what survives a crash."""
    version = settings.embedding_version
    with db.read() as conn:
        row = store.document_content(conn, document_id)
    if row is None:
        return IngestResult(document_id, document_id, "missing", error="no such document")
    with db.write() as conn:
        store.set_status(conn, document_id, "ingesting", error=None)
    try:
        texts = document_chunks(row.name, row.content, settings)
    except DocumentRefused as exc:
        with db.write() as conn:
            store.set_status(conn, document_id, "failed", error=exc.message)
        return IngestResult(document_id, row.name, "failed", error=exc.message)
    hashes = [store.content_hash(t) for t in texts]
    with db.read() as conn:
        stored = store.stored_hashes(conn, document_id, version)
    todo = [i for i, h in enumerate(hashes) if stored.get(i) != h]
    embedded = reused = 0
    group = settings.rag_embedding_batch_size * settings.rag_embedding_concurrency
    done = len(texts) - len(todo)
    if progress is not None:
        progress(row.name, done, len(texts))
    for start in range(0, len(todo), group):
        if check is not None:
            check()
        indices = todo[start : start + group]
        with db.read() as conn:
            known = store.known_vectors(conn, [hashes[i] for i in indices], version)
        fresh = [i for i in indices if hashes[i] not in known]
        if fresh:
            vectors = embed_all(
                embedder,
                [texts[i] for i in fresh],
                batch_size=settings.rag_embedding_batch_size,
                concurrency=settings.rag_embedding_concurrency,
                rate_per_minute=settings.rag_embedding_rate_limit,
            )
            known.update({hashes[i]: vectors[n] for n, i in enumerate(fresh)})
        new = [store.NewChunk(i, texts[i], hashes[i], known[hashes[i]]) for i in indices]
        with db.write() as conn:
            ids = store.upsert_chunks(
                conn,
                document_id=document_id,
                project_key=row.project_key,
                version=version,
                chunks=new,
            )
        index.added(
            [
                StoredVector(chunk_id, document_id, row.project_key, version, c.vector)
                for chunk_id, c in zip(ids, new, strict=True)
            ]
        )
        embedded += len(fresh)
        reused += len(indices) - len(fresh)
        done += len(indices)
        if progress is not None:
            progress(row.name, done, len(texts))
    with db.write() as conn:
        store.prune_chunks(conn, document_id, version=version, count=len(texts), index=index)
        store.set_status(
            conn,
            document_id,
            "ready",
            chunk_count=len(texts),
            embedding_version=version,
            embedding_model=f"{embedder.provider}:{embedder.model}"[:200],
            ingested_at=utcnow(),
        )
    outbox.drain(db, index)  # the points of chunks it pruned (an index that is down: later)
    return IngestResult(document_id, row.name, "ready", len(texts), embedded, reused)
