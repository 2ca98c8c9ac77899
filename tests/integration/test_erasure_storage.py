"""Erasure down to the bytes: on SQLite the erased address is in neither the database file nor
its WAL afterwards (privacy mode off and on), while a bystander's is; in Qdrant (local mode,
the real client) the erased documents' points are gone by filter count and by id, and with
Qdrant unreachable the receipt says the erasure is not verified and the delete stays owed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from awe.ai import pii
from awe.ai.vectors import choose_index
from awe.ai.vectors.qdrant import QdrantIndex
from awe.services import auth, erasure, knowledge
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk, Document
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.integration.test_erasure import PASSWORD, plant_all
from tests.integration.test_subject_search import BYSTANDER, EMAIL

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def file_bytes(database: Database) -> bytes:
    """The database file and its WAL, as they are on disk now."""
    path = Path(str(database.engine.url.database))
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def holds(data: bytes, value: str) -> bool:
    """Whether ``value`` is in ``data`` in clear, in any case (ASCII)."""
    return value.lower().encode() in data.lower()


@SQLITE
@pytest.mark.parametrize("scrubbing", [False, True], ids=["default", "privacy-mode"])
def test_erased_bytes_leave_the_sqlite_file_and_its_wal(
    backend: str, database: Database, drain: Drain, tmp_path: Path, scrubbing: bool
) -> None:
    """Before: the address is in the file or WAL (the account's e-mail is always clear). After
        a delete-mode erasure: not in either, in any case; the bystander's account still is (the
        test reads the right file); the receipt says secure_delete was on, the WAL truncated, and
    the file needed no VACUUM: zeroed cells were enough."""
    settings = make_settings(tmp_path, pii_scrubbing=scrubbing)
    pii.configure(settings)
    plant_all(database, settings, drain, tmp_path)
    auth.create_user(database, email=BYSTANDER, password=PASSWORD)
    assert holds(file_bytes(database), EMAIL)
    receipt = erasure.erase(database, settings, email=EMAIL, mode="delete")
    assert receipt.verified, receipt.problems
    assert receipt.storage == {"backend": "sqlite", "secure_delete": True, "wal_truncated": True,
                               "vacuumed": False, "file_holds_value": False}  # fmt: skip
    data = file_bytes(database)
    assert not holds(data, EMAIL)
    assert holds(data, BYSTANDER)


@pytest.fixture
def qdrant_settings(tmp_path: Path) -> object:
    """Settings with local-mode Qdrant in the test's home (small chunks)."""
    return make_settings(tmp_path, vector_backend="qdrant", rag_chunk_size=100,
                         rag_chunk_overlap=0)  # fmt: skip


def letter(database: Database, settings: object, drain: Drain, tmp_path: Path) -> str:
    """A document naming the subject, ingested into the configured index; its id."""
    path = tmp_path / "letter.txt"
    lines = [f"Paragraph {n}: {EMAIL} asked about order {n} and its delivery date." * 2
             for n in range(6)]  # fmt: skip
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    report = knowledge.add(database, settings, [path])  # type: ignore[arg-type]
    drain(settings=settings)
    return report.stored[0].id


@BACKENDS
def test_qdrant_points_of_erased_documents_are_gone_by_filter_and_by_id(
    backend: str, database: Database, drain: Drain, tmp_path: Path, qdrant_settings: object
) -> None:
    """The document's points exist before (by filter and by id); after the erasure none does,
    the receipt counts zero in both ways, and no delete is left owed."""
    index = choose_index(database, qdrant_settings)  # type: ignore[arg-type]
    assert isinstance(index, QdrantIndex)
    doc_id = letter(database, qdrant_settings, drain, tmp_path)
    with database.read() as conn:
        chunk_ids = list(
            conn.execute(select(Chunk.id).where(Chunk.document_id == doc_id)).scalars()
        )
    assert index.count(doc_id) == len(chunk_ids) > 1
    assert index.present(chunk_ids) == len(chunk_ids)
    receipt = erasure.erase(database, qdrant_settings, email=EMAIL)  # type: ignore[arg-type]
    assert receipt.verified, receipt.problems
    assert receipt.vectors["points_by_filter"] == 0
    assert receipt.vectors["points_by_id"] == 0
    assert receipt.vectors["owed_deletes"] == 0
    assert index.count(doc_id) == 0
    assert index.present(chunk_ids) == 0


def test_an_unreachable_qdrant_leaves_the_erasure_unverified_and_the_delete_owed(
    database: Database, drain: Drain, tmp_path: Path
) -> None:
    """Qdrant configured at a closed port: the rows are erased, but the receipt is not
    verified, says Qdrant did not answer, and the delete waits in the outbox."""
    settings = make_settings(tmp_path, rag_chunk_size=100, rag_chunk_overlap=0)
    letter(database, settings, drain, tmp_path)
    down = make_settings(tmp_path, vector_backend="qdrant", qdrant_url="http://127.0.0.1:9")
    receipt = erasure.erase(database, down, email=EMAIL)
    assert not receipt.verified
    assert receipt.vectors["owed_deletes"] == 1
    assert any("Qdrant did not answer" in p for p in receipt.problems)
    with database.read() as conn:
        assert conn.execute(select(Document.id)).first() is None


@SQLITE
def test_old_free_space_holding_the_value_is_rebuilt_away(
    backend: str, database: Database, settings: object, tmp_path: Path
) -> None:
    """A database used before secure_delete was on: a row deleted then left its bytes in free
    space. The erasure finds no row, reads the file, finds the bytes, rebuilds the file
    (VACUUM), and after that the file holds them no more."""
    from awe.storage.database import sqlite_driver

    path = Path(str(database.engine.url.database))
    database.dispose()
    module, _ = sqlite_driver()
    old = module.connect(str(path), isolation_level=None)
    old.execute("PRAGMA secure_delete=OFF")
    old.execute("CREATE TABLE scratch (t TEXT)")
    old.execute("INSERT INTO scratch VALUES (?)", (f"note about {EMAIL} " * 50,))
    old.execute("DROP TABLE scratch")
    old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    old.close()
    assert holds(file_bytes(database), EMAIL)
    receipt = erasure.erase(database, settings, email=EMAIL)  # type: ignore[arg-type]
    assert receipt.found == {}
    assert receipt.storage["vacuumed"] is True
    assert receipt.storage["file_holds_value"] is False
    assert receipt.verified, receipt.problems
    assert not holds(file_bytes(database), EMAIL)


@SQLITE
def test_a_value_in_freed_overflow_pages_leaves_the_file(
    backend: str, database: Database, drain: Drain, tmp_path: Path
) -> None:
    """A run input far larger than a page (its cells spill into overflow pages, which
    secure_delete=FAST frees without zeroing): after a delete-mode erasure the file and WAL
    hold no copy, whether the erasure needed its VACUUM or not."""
    settings = make_settings(tmp_path)
    from awe.engine.client import Engine

    Engine(database).submit(
        {"name": "big", "inputs": {"to": {"type": "string"}},
         "steps": [{"id": "a", "kind": "noop"}]},
        {"to": f"{EMAIL} " + "x" * 40_000 + f" {EMAIL}"},
    )  # fmt: skip
    drain(settings=settings)
    assert holds(file_bytes(database), EMAIL)
    receipt = erasure.erase(database, settings, email=EMAIL)
    assert receipt.verified, receipt.problems
    assert receipt.tables["runs"]["deleted"] == 1
    assert not holds(file_bytes(database), EMAIL)
