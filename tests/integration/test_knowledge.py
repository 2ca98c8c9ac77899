"""The knowledge base on SQLite and PostgreSQL: checks, durable ingest, search, removal, reindex."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from awe.ai.knowledge.retrieval import MixedVersions
from awe.ai.knowledge.validate import DocumentRefused, check
from awe.ai.vectors import SearchFilter
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.services import knowledge
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.documents import pdf_with_text

TOPICS = {
    "billing.md": "# Billing\n\nInvoices are sent on the first day of each month and are due in"
    " thirty days. Late invoices get a reminder by email.\n",
    "security.txt": "Passwords are hashed with Argon2id. Sessions expire after fifteen minutes"
    " of inactivity; API tokens can be revoked at any time.\n",
    "garden.html": "<html><head><style>p{}</style><script>var x=1;</script></head><body>"
    "<h1>Garden</h1><p>Tomatoes need six hours of sun and water every morning.</p></body></html>",
}


@pytest.fixture
def kb_settings(tmp_path: Path) -> Settings:
    """Small chunks, so a short text still makes several."""
    return make_settings(tmp_path, rag_chunk_size=200, rag_chunk_overlap=40)


def write_docs(folder: Path, docs: dict[str, str | bytes]) -> list[Path]:
    """Write ``docs`` into ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in docs.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        paths.append(path)
    return paths


def chunk_count(database: Database) -> int:
    """How many chunk rows exist."""
    with database.read() as conn:
        return int(conn.execute(select(func.count()).select_from(Chunk)).scalar_one())


def test_add_ingests_and_search_finds_the_right_document(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """Documents of three types are ingested by a run; each query finds its own document first."""
    paths = write_docs(tmp_path / "docs", dict(TOPICS))
    report = knowledge.add(database, kb_settings, paths)
    assert report.refused == []
    assert report.run_id is not None
    drain(settings=kb_settings)
    assert Engine(database).get_run(report.run_id).status == "succeeded"
    documents = knowledge.list_documents(database)
    assert {(d.status, d.embedding_version) for d in documents} == {("ready", "1")}
    for query, expected in [
        ("when are invoices due?", "billing.md"),
        ("how are passwords stored", "security.txt"),
        ("how much sun do tomatoes need", "garden.html"),
    ]:
        (best, *_) = knowledge.search(database, kb_settings, query, top_k=3)
        assert Path(best.document).name == expected, query
        assert best.score > 0.5
    garden = knowledge.search(database, kb_settings, "tomatoes", top_k=1)[0]
    assert "var x" not in garden.text  # no script
    assert "<p>" not in garden.text  # no markup


def test_pdf_text_layer_is_ingested_and_pii_scrubbed(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A PDF's text is extracted; an email and a phone number are scrubbed before embedding."""
    pdf = pdf_with_text("Support: write to help@example.com", "or call (212) 555-0123 any day.")
    knowledge.add(database, kb_settings, write_docs(tmp_path / "d", {"support.pdf": pdf}))
    drain(settings=kb_settings)
    (hit,) = knowledge.search(database, kb_settings, "how do I reach support", top_k=1)
    assert "<EMAIL_1>" in hit.text
    assert "<PHONE_1>" in hit.text
    assert "help@example.com" not in hit.text
    assert "555-0123" not in hit.text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("fake.pdf", b"just some text, not a PDF", "the name says .pdf but the content is text"),
        ("empty.txt", b"", "the file is empty"),
        ("tool.txt", b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8, "the content is application"),
        ("junk.md", b"notes " * 100 + b"\x00\x00", "binary data"),
        ("sheet.xlsx", b"PK\x03\x04", "is not a document type awe reads"),
        ("big.txt", b"x" * 4097, "over the limit of 4096"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(name: str, content: bytes, reason: str) -> None:
    """A lying extension, an empty file, an executable, junk, an unknown type, an oversize file."""
    with pytest.raises(DocumentRefused, match=reason):
        check(name, content, max_bytes=4096)


def test_one_bad_document_never_blocks_the_others(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A refused file is reported and skipped; a PDF with no text fails alone; the rest is ready."""
    docs: dict[str, str | bytes] = {
        "fake.pdf": "text pretending",
        "scan.pdf": pdf_with_text(),  # a PDF without any text
        "billing.md": TOPICS["billing.md"],
    }
    report = knowledge.add(database, kb_settings, write_docs(tmp_path / "d", docs))
    assert [Path(p).name for p, _ in report.refused] == ["fake.pdf"]
    drain(settings=kb_settings)
    run = Engine(database).get_run(str(report.run_id))
    assert run.status == "succeeded"
    states = {Path(d.name).name: (d.status, d.error) for d in knowledge.list_documents(database)}
    assert states["billing.md"] == ("ready", None)
    assert states["scan.pdf"][0] == "failed"
    assert "no text layer" in str(states["scan.pdf"][1])


def test_adding_again_is_idempotent_and_changes_replace_chunks(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """The same bytes again start nothing; changed bytes replace the chunks, never double them."""
    (path,) = write_docs(tmp_path / "d", {"billing.md": TOPICS["billing.md"] * 3})
    knowledge.add(database, kb_settings, [path])
    drain(settings=kb_settings)
    first = chunk_count(database)
    assert first >= 3
    assert knowledge.add(database, kb_settings, [path]).run_id is None
    path.write_text(TOPICS["billing.md"], encoding="utf-8")  # shorter: fewer chunks
    knowledge.add(database, kb_settings, [path])
    drain(settings=kb_settings)
    (document,) = knowledge.list_documents(database)
    assert chunk_count(database) == document.chunk_count < first


def test_remove_deletes_chunks_and_vectors(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """Removing a document by name removes its chunks; search no longer returns it."""
    paths = write_docs(
        tmp_path / "d", {"billing.md": TOPICS["billing.md"], "s.txt": TOPICS["security.txt"]}
    )
    knowledge.add(database, kb_settings, paths)
    drain(settings=kb_settings)
    knowledge.remove(database, kb_settings, [str(paths[0])])
    names = {
        Path(c.document).name for c in knowledge.search(database, kb_settings, "invoice", top_k=10)
    }
    assert names == {"s.txt"}
    assert chunk_count(database) == knowledge.list_documents(database)[0].chunk_count


def test_reindex_after_a_version_change(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """After AWE_EMBEDDING_VERSION changes, search refuses (or, told to, sees nothing) until
    reindex re-embeds it all; the old version's chunks are gone afterwards."""
    knowledge.add(database, kb_settings, write_docs(tmp_path / "d", {"b.md": TOPICS["billing.md"]}))
    drain(settings=kb_settings)
    bumped = make_settings(
        tmp_path, rag_chunk_size=200, rag_chunk_overlap=40, embedding_version="2"
    )
    with pytest.raises(MixedVersions):
        knowledge.search(database, bumped, "invoices", top_k=3)
    assert knowledge.search(database, bumped, "invoices", top_k=3, allow_mixed=True) == []
    ids, run_id = knowledge.reindex(database, bumped)
    assert len(ids) == 1
    assert run_id is not None
    drain(settings=bumped)
    assert knowledge.search(database, bumped, "invoices", top_k=1)[0].document.endswith("b.md")
    with database.read() as conn:
        versions = set(conn.execute(select(Chunk.embedding_version)).scalars())
    assert versions == {"2"}
    assert knowledge.reindex(database, bumped) == ([], None)


def test_search_filters_by_document_name(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A name filter keeps results to the named documents."""
    paths = write_docs(tmp_path / "d", dict(TOPICS))
    knowledge.add(database, kb_settings, paths)
    drain(settings=kb_settings)
    where = SearchFilter(names=[str(paths[1])])
    found = knowledge.search(database, kb_settings, "invoices", top_k=5, where=where)
    assert found
    assert {c.document for c in found} == {str(paths[1])}


def test_repeated_text_is_embedded_once(
    database: Database, kb_settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A chunk whose text was embedded before, in another document, reuses that vector."""
    same = "Shared paragraph: invoices are due thirty days after they are sent.\n"
    report = knowledge.add(
        database, kb_settings, write_docs(tmp_path / "d", {"a.txt": same, "b.txt": same})
    )
    drain(settings=kb_settings)
    documents = Engine(database).get_run(str(report.run_id)).step("ingest").output["documents"]
    assert [(d["embedded"], d["reused"]) for d in documents] == [(1, 0), (0, 1)]
    assert chunk_count(database) == 2  # each document still has its own chunk
