"""ingest steps read the worker's disk only inside AWE_INGEST_ROOT: unset, paths are refused;
a path outside it, or a symbolic link that leads out, is refused; a file's size is checked
before any byte of it is read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from awe.engine.client import Engine
from tests.conftest import make_settings
from tests.integration.conftest import Drain

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def ingest(*paths: str) -> dict[str, Any]:
    """A workflow that ingests ``paths``."""
    return {
        "name": "files",
        "steps": [
            {
                "id": "read",
                "kind": "ingest",
                "retry": {"max_attempts": 1},
                "with": {"paths": list(paths)},
            }
        ],
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder ingest may read, with a note in it, and a secret file beside it."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.md").write_text("Invoices are due in thirty days.\n", encoding="utf-8")
    (tmp_path / "secret.md").write_text("the database password is hunter2\n", encoding="utf-8")
    return folder


def test_without_a_root_paths_are_refused(engine: Engine, drain: Drain, root: Path) -> None:
    """AWE_INGEST_ROOT unset: an ingest of paths fails, naming the setting; nothing is read."""
    run_id = engine.submit(ingest(str(root / "note.md")))
    drain()
    step = engine.get_run(run_id).step("read")
    assert (step.status, step.error_category) == ("dead", "validation")
    assert "AWE_INGEST_ROOT" in (step.error_message or "")


def test_inside_the_root_files_are_read_relative_to_it(
    engine: Engine, drain: Drain, root: Path, tmp_path: Path
) -> None:
    """A relative path is read from the root, and ingested."""
    run_id = engine.submit(ingest("note.md"))
    drain(settings=make_settings(tmp_path, ingest_root=root))
    step = engine.get_run(run_id).step("read")
    assert step.status == "succeeded"
    assert step.output["ready"] == 1


@pytest.mark.parametrize("how", ["absolute", "dotdot", "link", "link-in-folder"])
def test_paths_leading_out_of_the_root_are_refused(
    engine: Engine, drain: Drain, root: Path, tmp_path: Path, how: str
) -> None:
    """An absolute path elsewhere, a ../ path, a symbolic link to a file outside, or one inside a
    folder being ingested: each is refused, and the secret's text is stored nowhere."""
    if how == "link":
        (root / "innocent.md").symlink_to(tmp_path / "secret.md")
        target = "innocent.md"
    elif how == "link-in-folder":
        (root / "sub").mkdir()
        (root / "sub" / "escape.md").symlink_to(tmp_path / "secret.md")
        target = "sub"
    else:
        target = str(tmp_path / "secret.md") if how == "absolute" else "../secret.md"
    run_id = engine.submit(ingest(target))
    drain(settings=make_settings(tmp_path, ingest_root=root))
    step = engine.get_run(run_id).step("read")
    assert (step.status, step.error_category) == ("dead", "validation")
    assert "outside the folder ingest steps may read" in (step.error_message or "")
    assert "hunter2" not in str(engine.get_run(run_id).as_dict())


def test_a_file_is_sized_before_it_is_read(
    engine: Engine, drain: Drain, root: Path, tmp_path: Path
) -> None:
    """A named pipe (reading it would block forever) is refused as not a regular file, and a
    file over AWE_KNOWLEDGE_MAX_BYTES is refused by its size: neither is read."""
    os.mkfifo(root / "pipe.md")
    (root / "big.md").write_text("x" * 5000, encoding="utf-8")
    run_id = engine.submit(ingest("pipe.md", "big.md"))
    drain(settings=make_settings(tmp_path, ingest_root=root, knowledge_max_bytes=1000))
    output = engine.get_run(run_id).step("read").output
    refusals = {d["name"]: d["error"] for d in output["documents"]}
    assert "not a regular file" in refusals["pipe.md"]
    assert "5000 bytes is over the limit of 1000" in refusals["big.md"]
