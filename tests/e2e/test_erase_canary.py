"""The erasure canary: one e-mail address planted in a user, a run input, a step output, a log
line, an audit detail and a document, on SQLite (default, and with scrubbing on) and on
PostgreSQL (pgvector, and Qdrant in local mode). After ``awe erase --email`` (the real
executable) a search over every text and JSON column finds nothing, the vectors of the document
are gone (by document and by id), on SQLite neither the file nor its WAL holds the bytes, and
the receipt's counts are exactly what was planted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from awe.ai import pii
from awe.ai.vectors.qdrant import QdrantIndex
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.engine.worker import Worker, WorkerOptions
from awe.services import audit, auth, knowledge
from awe.services.subject_search import Subject, find, with_placeholders
from awe.storage.database import Database, create_database
from awe.storage.engine_models import RunEvent, Step
from awe.storage.knowledge_models import Chunk
from tests.conftest import make_settings
from tests.e2e.conftest import awe_env, run_awe

CANARY = "canary.Hypatia@alexandria.example"
VARIANTS = [
    ("sqlite", "default"),
    ("sqlite", "scrubbing"),
    pytest.param("postgres", "pgvector", marks=pytest.mark.postgres),
    pytest.param("postgres", "qdrant", marks=pytest.mark.postgres),
]


def variant_settings(home: Path, db_url: str, variant: str) -> dict[str, str]:
    """The AWE_* variables of the variant (the CLI's and the planting process's)."""
    env = {"AWE_DATABASE_URL": db_url, "AWE_RAG_CHUNK_SIZE": "100", "AWE_RAG_CHUNK_OVERLAP": "0"}
    if variant == "scrubbing":
        env["AWE_PII_SCRUBBING"] = "true"
    if variant == "qdrant":
        env["AWE_VECTOR_BACKEND"] = "qdrant"
    return env


def plant(db: Database, settings: Settings, home: Path) -> dict[str, str]:
    """The canary in every place the issue names; the ids of the run and the document."""
    auth.create_user(db, email=CANARY.lower(), password="a long enough password")
    run_id = Engine(db).submit(
        {"name": "notify", "inputs": {"to": {"type": "string"}}, "steps": [
            {"id": "tell", "kind": "shell", "with": {"command": "echo notify {{ inputs.to }}"}}]},
        {"to": CANARY},
    )  # fmt: skip
    audit.record_now(db, audit.SYSTEM, "test.note", details={"contact": CANARY})
    letter = home / "letter.txt"
    letter.write_text("\n\n".join(
        f"Paragraph {n}: please forward the scrolls to {CANARY} before the festival." * 2
        for n in range(5)) + "\n", encoding="utf-8")  # fmt: skip
    report = knowledge.add(db, settings, [letter])
    Worker(db, WorkerOptions(concurrency=2, poll_seconds=0.01), settings=settings).drain()
    return {"run": run_id, "document": report.stored[0].id}


def count(db: Database, model: type, condition: object) -> int:
    """Rows of ``model`` matching ``condition``."""
    with db.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(model).where(condition)).scalar_one()
        )  # type: ignore[arg-type]


@pytest.mark.parametrize(("backend", "variant"), VARIANTS, indirect=["backend"])
def test_the_canary_is_gone_everywhere(
    backend: str, variant: str, db_url: str, tmp_path: Path
) -> None:
    """See the module's docstring; counts per table are read from the database before."""
    env = variant_settings(tmp_path, db_url, variant)
    settings = make_settings(
        tmp_path, database_url=db_url, pii_scrubbing=variant == "scrubbing",
        vector_backend="qdrant" if variant == "qdrant" else "auto",
        rag_chunk_size=100, rag_chunk_overlap=0,
    )  # fmt: skip
    pii.configure(settings)
    db = create_database(settings)
    try:
        planted = plant(db, settings, tmp_path)
        run, document = planted["run"], planted["document"]
        with db.read() as conn:
            chunk_ids = list(
                conn.execute(select(Chunk.id).where(Chunk.document_id == document)).scalars()
            )
        canary = with_placeholders(Subject((CANARY,)), settings)
        before = find(db, canary).counts()
        # In privacy mode the log line holds the address's keyed placeholder: found too.
        assert {"users", "runs", "steps", "run_events", "audit_log", "documents"} <= set(before)
        expected = {
            "runs": {"deleted": 1, "pseudonymized": 0},
            "steps": {"deleted": count(db, Step, Step.run_id == run), "pseudonymized": 0},
            "run_events": {
                "deleted": count(db, RunEvent, RunEvent.run_id == run),
                "pseudonymized": 0,
            },
            "documents": {"deleted": 1, "pseudonymized": 0},
            "chunks": {"deleted": len(chunk_ids), "pseudonymized": 0},
            "users": {"deleted": 1, "pseudonymized": 0},
            "audit_log": {"deleted": 0, "pseudonymized": before["audit_log"]},
        }
        if variant == "qdrant":
            index = QdrantIndex.shared(settings)
            assert index.count(document) == len(chunk_ids) > 1
            QdrantIndex.close_all()  # the local folder is the CLI's now
        done = run_awe("erase", "--email", CANARY, "--yes", "--json", home=tmp_path,
                       env=awe_env(tmp_path, **env))  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        receipt = json.loads(done.stdout)
        assert receipt["verified"] is True, receipt["problems"]
        assert receipt["found"] == before
        assert receipt["tables"] == expected
        assert find(db, canary).counts() == {}
        assert count(db, Chunk, Chunk.document_id == document) == 0
        assert count(db, Chunk, Chunk.id.in_(chunk_ids)) == 0
        assert receipt["vectors"]["absent"] is True
        if variant == "qdrant":
            index = QdrantIndex.shared(settings)
            assert index.count(document) == 0
            assert index.present(chunk_ids) == 0
            QdrantIndex.close_all()
        if backend == "sqlite":
            path = Path(str(db.engine.url.database))
            wal = path.with_name(path.name + "-wal")
            data = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
            assert CANARY.lower().encode() not in data.lower()
        assert CANARY.lower() not in done.stdout.lower()
    finally:
        QdrantIndex.close_all()
        db.dispose()
