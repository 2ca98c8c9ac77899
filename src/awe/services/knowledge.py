"""The knowledge base's use cases: add documents, list, remove, search, re-index.

Adding checks each file at once (size, type, content) and stores the accepted ones; ingesting
them (extract, scrub, chunk, embed) is a run of the built-in ``knowledge-ingest`` workflow, so
it is durable, retried, visible in ``awe runs`` and resumable like any other.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, select

from awe.ai.embeddings import get_embedder
from awe.ai.knowledge import store
from awe.ai.knowledge.ingest import store_files
from awe.ai.knowledge.retrieval import RetrievedChunk, retrieve
from awe.ai.vectors import SearchFilter, choose_index, outbox
from awe.ai.vectors.qdrant import QdrantIndex
from awe.core.config import Settings
from awe.core.errors import NotFound, ValidationFailed
from awe.engine.client import Engine
from awe.services import audit
from awe.services.audit import Actor
from awe.services.projects import project_key
from awe.services.tokens import operator_actor
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk, Document

INGEST_WORKFLOW = "knowledge-ingest"


@dataclass
class AddReport:
    """What ``add`` did: documents stored, files refused (with why), and the ingest run."""

    stored: list[store.DocumentInfo] = field(default_factory=list)
    unchanged: list[store.DocumentInfo] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    run_id: str | None = None


def ingest_spec(document_ids: list[str]) -> dict[str, object]:
    """The ingest workflow for these documents."""
    return {
        "name": INGEST_WORKFLOW,
        "description": "Extract, scrub, chunk and embed documents into the knowledge base",
        "steps": [
            {
                "id": "ingest",
                "kind": "ingest",
                "with": {"documents": document_ids},
                "retry": {"max_attempts": 5, "backoff": [2, 10, 30, 120], "jitter": 0.2},
            }
        ],
    }


def add(
    db: Database,
    settings: Settings,
    paths: list[Path],
    *,
    project: str | None = None,
    uploaded: bool = False,
    actor: Actor | None = None,
) -> AddReport:
    """Check and store files (folders: the files inside), then start one run to ingest them.

    ``uploaded``: the files are temporary copies of uploads, named by their file names. The
    change is audited as ``actor``'s (the operator's when none is given).
    """
    key = project_key(db, project)
    stored = store_files(db, settings, [str(p) for p in paths], project_key=key, uploaded=uploaded)
    report = AddReport(refused=stored.refused)
    to_ingest = stored.to_ingest
    with db.read() as conn:
        touched = stored.to_ingest + stored.unchanged
        infos = {d.id: d for d in store.get_documents(conn, project_key=key, refs=touched)}
    report.stored = [infos[i] for i in to_ingest]
    report.unchanged = [infos[i] for i in stored.unchanged]
    if to_ingest:
        report.run_id = Engine(db).submit(ingest_spec(to_ingest), project_id=key or None)
    audit.record_now(
        db,
        actor or operator_actor(),
        "knowledge.add",
        target_type="documents",
        target_id=f"{len(report.stored)} document(s)",
        project_id=key or None,
        details={"names": [d.name for d in report.stored], "run_id": report.run_id},
    )
    return report


def add_uploads(
    db: Database,
    settings: Settings,
    uploads: list[tuple[str, BinaryIO]],
    *,
    project: str,
    actor: Actor,
) -> AddReport:
    """``add`` for uploaded files, given as (file name, stream): each is copied to a temporary
    folder (up to one byte past the size limit, so an oversized one is refused as such)."""
    with tempfile.TemporaryDirectory(prefix="awe-upload-") as folder:
        paths = []
        for index, (name, stream) in enumerate(uploads):
            base = Path(name or "upload").name
            # Each in a folder of its own: two files of one name do not overwrite each other.
            path = Path(folder) / str(index) / (base if base not in ("", ".", "..") else "upload")
            path.parent.mkdir()
            path.write_bytes(stream.read(settings.knowledge_max_bytes + 1))
            paths.append(path)
        return add(db, settings, paths, project=project, uploaded=True, actor=actor)


def list_documents(db: Database, *, project: str | None = None) -> list[store.DocumentInfo]:
    """The project's documents, by name."""
    key = project_key(db, project)
    with db.read() as conn:
        return store.get_documents(conn, project_key=key)


def remove(
    db: Database,
    settings: Settings,
    refs: list[str],
    *,
    project: str | None = None,
    actor: Actor | None = None,
) -> list[store.DocumentInfo]:
    """Delete documents by id or name, with their chunks and vectors (audited)."""
    key = project_key(db, project)
    index = choose_index(db, settings)
    with db.write() as conn:
        found = store.get_documents(conn, project_key=key, refs=refs)
        missing = set(refs) - {d.id for d in found} - {d.name for d in found}
        if missing:
            raise NotFound(f"no document {', '.join(sorted(missing))} (awe knowledge list)")
        conn.execute(delete(Document).where(Document.id.in_([d.id for d in found])))
        outbox.enqueue(conn, index, document_ids=[d.id for d in found])
        audit.record(
            conn,
            actor or operator_actor(),
            "knowledge.delete",
            target_type="documents",
            target_id=",".join(d.id for d in found)[:200],
            project_id=key or None,
            details={"names": [d.name for d in found]},
        )
    outbox.drain(db, index)  # an index that is down: retried later
    return found


@dataclass(frozen=True)
class Collected:
    """What ``gc`` did: owed deletes done and still failing, points checked, orphans removed."""

    index: str
    deletes_done: int
    deletes_failed: int
    deletes_owed: int
    points: int
    orphans: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return dict(vars(self))


def gc(db: Database, settings: Settings, *, dry_run: bool = False) -> Collected:
    """Do the deletes the external index owes, then remove its points whose chunk no longer
    exists (left by a delete that was lost, or by awe before the outbox). An index that is
    the rows themselves has nothing to collect."""
    index = choose_index(db, settings)
    listing = getattr(index, "points", None)
    if listing is None:
        return Collected(index.name, 0, 0, 0, 0, 0)
    drained = outbox.Drained(0, 0, outbox.owed(db)) if dry_run else outbox.drain(db, index)
    points = listing()
    checked = orphans = 0
    for collection, ids in points.items():
        checked += len(ids)
        known: set[str] = set()
        with db.read() as conn:
            for start in range(0, len(ids), 1000):
                part = ids[start : start + 1000]
                known |= set(conn.execute(select(Chunk.id).where(Chunk.id.in_(part))).scalars())
        lost = [i for i in ids if i not in known]
        orphans += len(lost)
        if lost and not dry_run:
            index.delete_points(collection, lost)  # type: ignore[attr-defined]
    return Collected(index.name, drained.done, drained.failed, drained.owed, checked, orphans)


def search(
    db: Database,
    settings: Settings,
    query: str,
    *,
    top_k: int = 4,
    project: str | None = None,
    where: SearchFilter | None = None,
    allow_mixed: bool = False,
) -> list[RetrievedChunk]:
    """The chunks nearest ``query`` (refused while documents wait for a reindex, unless
    ``allow_mixed``: see retrieve)."""
    if not query.strip():
        raise ValidationFailed("the search query is empty")
    return retrieve(
        db,
        settings,
        embedder=get_embedder(settings),
        index=choose_index(db, settings),
        query=query,
        project_key=project_key(db, project),
        top_k=top_k,
        where=where,
        allow_mixed=allow_mixed,
    )


def versions(
    db: Database, settings: Settings, *, project: str | None = None
) -> list[store.VersionCount]:
    """The project's chunks per embedding version and model (the current version's first)."""
    key = project_key(db, project)
    with db.read() as conn:
        found = store.versions(conn, key)
    return sorted(found, key=lambda v: (v.version != settings.embedding_version, v.version))


def reindex(
    db: Database,
    settings: Settings,
    *,
    project: str | None = None,
    everything: bool = False,
    actor: Actor | None = None,
) -> tuple[list[str], str | None]:
    """Re-embed documents not at the current embedding version (all with ``everything``).

    Returns the document ids and the run that re-embeds them (None when there is nothing to do).
    Each document keeps its old vectors until its new ones are all stored.
    """
    key = project_key(db, project)
    statement = select(Document.id).where(Document.project_key == key)
    if not everything:
        statement = statement.where(
            (Document.embedding_version != settings.embedding_version)
            | Document.embedding_version.is_(None)
            | (Document.status != "ready")
        )
    with db.read() as conn:
        ids = list(conn.execute(statement.order_by(Document.name)).scalars())
    if not ids:
        return [], None
    run_id = Engine(db).submit(ingest_spec(ids), project_id=key or None)
    audit.record_now(
        db,
        actor or operator_actor(),
        "knowledge.reindex",
        target_type="run",
        target_id=run_id,
        project_id=key or None,
        details={"documents": len(ids)},
    )
    return ids, run_id


def owed_deletes(db: Database, settings: Settings) -> Callable[[datetime], object]:
    """The scheduler's chore: do the deletes the external vector index owes (none: nothing)."""

    def drain_owed(now: datetime) -> object:
        if settings.vector_backend not in outbox.EXTERNAL or outbox.owed(db) == 0:
            return None
        if not settings.qdrant_url and not QdrantIndex.opened(settings):
            # Local mode: its folder is one process's; the process that holds it drains.
            return None
        return outbox.drain(db, choose_index(db, settings), now=now)

    return drain_owed
