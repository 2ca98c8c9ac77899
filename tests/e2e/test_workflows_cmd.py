"""Stored workflows through the CLI: immutable versions, and a run pins its version."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import awe_env, run_awe

V1 = "name: report\nsteps:\n  - id: a\n    kind: shell\n    with: {command: echo one}\n"
V2 = "name: report\nsteps:\n  - id: a\n    kind: shell\n    with: {command: echo two}\n"


def test_push_versions_and_run_pins_version(tmp_path: Path, db_url: str) -> None:
    """Pushes make versions 1 and 2 (an unchanged push makes none); a run keeps its version."""
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    wf = tmp_path / "report.yaml"
    wf.write_text(V1, encoding="utf-8")
    first = json.loads(
        run_awe("workflows", "push", str(wf), "--json", home=tmp_path, env=env).stdout
    )
    assert (first["version"], first["created"]) == (1, True)
    again = json.loads(
        run_awe("workflows", "push", str(wf), "--json", home=tmp_path, env=env).stdout
    )
    assert (again["version"], again["created"]) == (1, False)

    run1 = json.loads(run_awe("run", "report", "--json", home=tmp_path, env=env).stdout)
    assert run1["outputs"]["a"]["stdout"] == "one\n"

    wf.write_text(V2, encoding="utf-8")
    second = json.loads(
        run_awe("workflows", "push", str(wf), "--json", home=tmp_path, env=env).stdout
    )
    assert second["version"] == 2
    run2 = json.loads(run_awe("run", "report", "--json", home=tmp_path, env=env).stdout)
    assert run2["outputs"]["a"]["stdout"] == "two\n"
    old = json.loads(
        run_awe("run", "report", "--version", "1", "--json", home=tmp_path, env=env).stdout
    )
    assert old["outputs"]["a"]["stdout"] == "one\n"

    shown1 = json.loads(
        run_awe("runs", "show", run1["id"], "--json", home=tmp_path, env=env).stdout
    )
    shown2 = json.loads(
        run_awe("runs", "show", run2["id"], "--json", home=tmp_path, env=env).stdout
    )
    assert (shown1["workflow_version"], shown2["workflow_version"]) == (1, 2)

    listed = json.loads(run_awe("workflows", "list", "--json", home=tmp_path, env=env).stdout)
    assert [(w["name"], w["version"]) for w in listed] == [("report", 2)]
    assert (
        run_awe("workflows", "show", "report", "--version", "1", home=tmp_path, env=env).stdout
        == V1
    )
    diff = run_awe("workflows", "diff", "report", "1", "2", home=tmp_path, env=env).stdout
    assert "-    with: {command: echo one}" in diff
    assert "+    with: {command: echo two}" in diff
    missing = run_awe("run", "nope", home=tmp_path, env=env)
    assert missing.returncode == 1
    assert "no stored workflow 'nope'" in missing.stderr
