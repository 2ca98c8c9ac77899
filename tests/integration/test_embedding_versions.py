"""Embedding versions: ``versions`` counts chunks per version and model; while a document has
vectors of another version only, a search refuses (naming it and the fix) unless told to search
the current version anyway; after a reindex there is one version again and searches run."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.ai.knowledge.retrieval import MixedVersions
from awe.services import knowledge
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain


def test_a_search_refuses_documents_left_at_another_version(
    database: Database, drain: Drain, tmp_path: Path
) -> None:
    """Ingested at version 1 with the local embedder; with AWE_EMBEDDING_VERSION=2 the search
    is a 409-class refusal naming the document and `awe knowledge reindex`, allow_mixed
    searches version 2 (nothing there yet); the reindex leaves one version, 2, and the search
    finds the document."""
    v1 = make_settings(tmp_path, embedding_version="1")
    v2 = make_settings(tmp_path, embedding_version="2")
    notes = tmp_path / "notes.txt"
    notes.write_text("Backups are restored with one command.\n", encoding="utf-8")
    knowledge.add(database, v1, [notes])
    drain(settings=v1)
    (only,) = knowledge.versions(database, v1)
    assert (only.version, only.documents, only.chunks) == ("1", 1, 1)
    assert only.model is not None
    assert only.model.startswith("local:")
    assert knowledge.search(database, v1, "restore a backup")
    with pytest.raises(MixedVersions) as refused:
        knowledge.search(database, v2, "restore a backup")
    assert refused.value.http_status == 409
    assert "notes.txt (version 1)" in refused.value.message
    assert "awe knowledge reindex" in refused.value.message
    assert knowledge.search(database, v2, "restore a backup", allow_mixed=True) == []
    ids, run_id = knowledge.reindex(database, v2)
    assert ids
    assert run_id
    drain(settings=v2)
    assert [(v.version, v.chunks) for v in knowledge.versions(database, v2)] == [("2", 1)]
    found = knowledge.search(database, v2, "restore a backup")
    assert [c.document for c in found] == [str(notes)]
