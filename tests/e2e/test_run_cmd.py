"""`awe run FILE` on a fresh home: in-process execution, inputs, outputs, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import run_awe

GREET = """\
name: greet
inputs:
  who: {type: string, required: true}
  times: {type: integer, default: 2}
steps:
  - id: shout
    kind: noop
    needs: [hello]
    with: {text: "{{ steps.hello.output.stdout | upper }}"}
  - id: hello
    kind: shell
    with: {command: "for i in $(seq {{ inputs.times }}); do echo hello {{ inputs.who }}; done"}
outputs:
  text: "{{ steps.shout.output.text | trim }}"
"""

FAILING = """\
name: broken
steps:
  - id: bad
    kind: shell
    with: {command: "echo wrong config >&2; exit 3"}
"""


def test_run_succeeds_alone_and_prints_json(tmp_path: Path) -> None:
    """With no worker running, awe run executes in-process; --json prints the final run."""
    (tmp_path / "greet.yaml").write_text(GREET, encoding="utf-8")
    result = run_awe("run", "greet.yaml", "-i", "who=ada", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert set(run) == {"id", "status", "outputs", "steps"}
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"text": "HELLO ADA\nHELLO ADA"}
    assert [s["status"] for s in run["steps"]] == ["succeeded", "succeeded"]


def test_run_verbose_streams_logs_and_input_file(tmp_path: Path) -> None:
    """-v streams step output; --input-file supplies typed inputs."""
    (tmp_path / "greet.yaml").write_text(GREET, encoding="utf-8")
    (tmp_path / "in.json").write_text('{"who": "bob", "times": 3}', encoding="utf-8")
    result = run_awe("run", "greet.yaml", "--input-file", "in.json", "-v", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("[hello] hello bob") == 3
    assert "HELLO BOB" in result.stdout


def test_failed_run_exits_1(tmp_path: Path) -> None:
    """A run that fails exits 1 and its --json says why."""
    (tmp_path / "broken.yaml").write_text(FAILING, encoding="utf-8")
    result = run_awe("run", "broken.yaml", "--json", home=tmp_path)
    assert result.returncode == 1
    run = json.loads(result.stdout)
    assert run["status"] == "failed"
    assert run["steps"][0]["error_category"] == "exit_code:3"


def test_bad_inputs_exit_3_and_detach_prints_id(tmp_path: Path) -> None:
    """Unknown or mistyped inputs exit 3 naming each; --detach only prints the run id."""
    (tmp_path / "greet.yaml").write_text(GREET, encoding="utf-8")
    bad = run_awe("run", "greet.yaml", "-i", "whom=x", "-i", "times=lots", home=tmp_path)
    assert bad.returncode == 3
    assert "unknown input 'whom' (did you mean 'who'?)" in bad.stderr
    assert "times='lots' is not a valid integer" in bad.stderr
    assert "input 'who' is required" in bad.stderr
    detached = run_awe("run", "greet.yaml", "-i", "who=x", "--detach", home=tmp_path)
    assert detached.returncode == 0
    run_id = detached.stdout.strip()
    shown = run_awe("runs", "show", run_id, "--json", home=tmp_path)
    assert json.loads(shown.stdout)["status"] == "queued"
