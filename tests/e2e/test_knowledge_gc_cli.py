"""``awe knowledge gc`` as an operator runs it: with the rows as the index there is nothing to
collect; with Qdrant (local mode) it reports the points it checked, and a dry run exits 10."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import awe_env, run_awe


def test_gc_says_what_it_found(tmp_path: Path) -> None:
    """SQLite's own index: exit 0, "nothing to collect". Qdrant local mode after one ingest:
    --json names the index and counts the document's points, none of them orphans; --dry-run
    exits 10."""
    assert run_awe("db", "upgrade", home=tmp_path).returncode == 0
    plain = run_awe("knowledge", "gc", home=tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "nothing to collect" in plain.stdout
    env = awe_env(tmp_path, AWE_VECTOR_BACKEND="qdrant")
    notes = tmp_path / "notes.txt"
    notes.write_text("Backups are restored with one command.\n", encoding="utf-8")
    added = run_awe("knowledge", "add", str(notes), home=tmp_path, env=env, timeout=300)
    assert added.returncode == 0, added.stdout + added.stderr
    report = run_awe("knowledge", "gc", "--json", home=tmp_path, env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    found = json.loads(report.stdout)
    assert (found["index"], found["points"], found["orphans"]) == ("qdrant", 1, 0)
    preview = run_awe("knowledge", "gc", "--dry-run", home=tmp_path, env=env)
    assert preview.returncode == 10
