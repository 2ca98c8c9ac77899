"""Ingest is durable: kill -9 the worker mid-ingest, another finishes it, no chunk is doubled."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from awe.engine.client import Engine
from awe.services import knowledge
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk, Document
from tests.chaos.conftest import WorkerProcesses
from tests.conftest import make_settings
from tests.support.wait import wait_until


def test_killed_ingest_resumes_without_doubling(
    engine: Engine, database: Database, workers: WorkerProcesses, tmp_path: Path
) -> None:
    """A worker SIGKILLed after some chunks are stored: the step's lease expires, a second worker
    resumes it, embeds only what is missing, and every chunk exists exactly once."""
    workers.env.update(
        AWE_RAG_CHUNK_SIZE="200",
        AWE_RAG_CHUNK_OVERLAP="0",
        AWE_RAG_EMBEDDING_BATCH_SIZE="4",
        AWE_RAG_EMBEDDING_CONCURRENCY="1",
    )
    settings = make_settings(
        tmp_path, rag_chunk_size=200, rag_chunk_overlap=0, rag_embedding_batch_size=4
    )
    paragraphs = [
        f"Paragraph {i}: the ledger entry {i} records a payment of {i * 7} units to vendor {i % 13}"
        f" on day {i % 28 + 1}, approved by team {i % 5}."
        for i in range(240)
    ]
    doc = tmp_path / "ledger.txt"
    doc.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    report = knowledge.add(database, settings, [doc])
    assert report.run_id is not None

    def stored() -> int:
        with database.read() as conn:
            return int(conn.execute(select(func.count()).select_from(Chunk)).scalar_one())

    first = workers.start(lease=2)
    wait_until(lambda: stored() >= 8, timeout=120, what="some chunks to be stored")
    workers.kill(first)
    partial = stored()
    workers.start(lease=2)
    wait_until(
        lambda: engine.get_run(str(report.run_id)).status == "succeeded",
        timeout=300,
        what="the ingest to finish on the second worker",
    )
    with database.read() as conn:
        (document,) = conn.execute(select(Document.status, Document.chunk_count)).all()
        indexes = list(
            conn.execute(select(Chunk.chunk_index).order_by(Chunk.chunk_index)).scalars()
        )
    assert document.status == "ready"
    assert indexes == list(range(document.chunk_count))  # each chunk once, none missing
    assert 0 < partial < document.chunk_count  # the kill really came mid-ingest
    step = engine.get_run(str(report.run_id)).step("ingest")
    assert step.attempt == 2
    assert step.output["documents"][0]["embedded"] <= document.chunk_count - partial
