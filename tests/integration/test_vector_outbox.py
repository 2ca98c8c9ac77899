"""Qdrant (local mode) stays consistent with the chunk rows: a document that shrinks on
re-ingest loses its extra points; a delete made while Qdrant is unreachable is owed durably and
done by the scheduler's chore once it answers again; ``gc`` removes points whose chunks are
gone. The real qdrant-client throughout; the unreachable Qdrant is a closed port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from awe.ai.vectors import StoredVector, choose_index
from awe.ai.vectors.qdrant import QdrantIndex
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.ids import new_id
from awe.engine.scheduler import Scheduler
from awe.services import knowledge
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk, VectorDelete
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.clock import ManualClock

BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
SENTENCES = [
    f"Sentence number {n} talks about topic {n} at some length, long enough to fill a"
    " chunk of its own: a hundred characters or so, as the chunker asks."
    for n in range(12)
]


def chunks_of(db: Database, document_id: str) -> int:
    """The document's chunk rows."""
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.count(Chunk.id)).where(Chunk.document_id == document_id)
            ).scalar_one()
        )


def owed(db: Database) -> list[Any]:
    """The deletes still owed (rows: document_ids, attempts, last_error…)."""
    with db.read() as conn:
        return list(conn.execute(select(*VectorDelete.__table__.columns)).all())


def ingest(db: Database, drain: Drain, settings: object, path: Path, lines: int) -> str:
    """Store ``lines`` sentences as ``path`` and ingest them; the document's id."""
    path.write_text("\n\n".join(SENTENCES[:lines]) + "\n", encoding="utf-8")
    report = knowledge.add(db, settings, [path])  # type: ignore[arg-type]
    assert report.refused == []
    drain(settings=settings)
    (stored,) = report.stored
    return stored.id


Local = tuple[Settings, QdrantIndex]


@pytest.fixture
def qdrant(database: Database, tmp_path: Path) -> Local:
    """Settings with local-mode Qdrant in the test's home (small chunks), and its index."""
    settings = make_settings(
        tmp_path, vector_backend="qdrant", rag_chunk_size=100, rag_chunk_overlap=0
    )
    index = choose_index(database, settings)
    assert isinstance(index, QdrantIndex)
    return settings, index


@BACKENDS
def test_a_document_that_shrinks_keeps_only_its_points(
    backend: str, database: Database, drain: Drain, tmp_path: Path, qdrant: Local
) -> None:
    """Twelve sentences, then re-ingested as three: Qdrant holds as many points for it as its
    (fewer) chunk rows, and owes nothing."""
    settings, index = qdrant
    doc = ingest(database, drain, settings, tmp_path / "notes.txt", 12)
    before = chunks_of(database, doc)
    assert index.count(doc) == before >= 12
    assert ingest(database, drain, settings, tmp_path / "notes.txt", 3) == doc
    after = chunks_of(database, doc)
    assert 0 < after < before
    assert index.count(doc) == after
    assert owed(database) == []


@BACKENDS
def test_a_delete_qdrant_missed_is_owed_then_done_and_gc_removes_orphans(
    backend: str, database: Database, drain: Drain, tmp_path: Path, qdrant: Local
) -> None:
    """Removing a document while Qdrant is unreachable deletes its rows and owes Qdrant the
    delete (attempts 1, the error's type kept); the scheduler's chore does it once Qdrant
    answers, and owes nothing more. A point whose chunk never existed is an orphan that gc
    finds and removes (a dry run only counts it)."""
    settings, index = qdrant
    doc = ingest(database, drain, settings, tmp_path / "gone.txt", 6)
    points = chunks_of(database, doc)
    assert index.count(doc) == points > 0
    unreachable = make_settings(tmp_path, vector_backend="qdrant", qdrant_url="http://127.0.0.1:9")
    knowledge.remove(database, unreachable, [doc])
    assert chunks_of(database, doc) == 0
    (debt,) = owed(database)
    assert (debt.document_ids, debt.attempts) == ([doc], 1)
    assert debt.last_error
    assert index.count(doc) == points  # still there: nobody could delete them
    clock = ManualClock(utcnow())
    chore = knowledge.owed_deletes(database, settings)
    scheduler = Scheduler(database, clock=clock, owner="s", lease_seconds=60, maintenance=[chore])
    clock.advance(3600)  # past the retry's wait (the chore runs with the scheduler's clock)
    scheduler.tick()
    assert owed(database) == []
    assert index.count(doc) == 0

    survivor = ingest(database, drain, settings, tmp_path / "kept.txt", 2)
    orphan = StoredVector(new_id(), "no-such-document", "", settings.embedding_version,
                          np.ones(384, dtype=np.float32) / np.sqrt(384))  # fmt: skip
    index.added([orphan])
    kept = chunks_of(database, survivor)
    preview = knowledge.gc(database, settings, dry_run=True)
    assert (preview.orphans, preview.points) == (1, kept + 1)
    assert orphan.chunk_id in {p for ids in index.points().values() for p in ids}
    collected = knowledge.gc(database, settings)
    assert collected.orphans == 1
    assert orphan.chunk_id not in {p for ids in index.points().values() for p in ids}
    assert index.count(survivor) == kept
    assert knowledge.gc(database, settings).orphans == 0
