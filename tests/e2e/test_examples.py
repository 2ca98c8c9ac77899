"""Every example in examples/ runs on a fresh home and ends as examples/README.md says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import awe_env, run_awe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


ROW = re.compile(r"^\| \[([\w.-]+\.yaml)\]\([^)]*\) \|.*\|(.*)\| (\w+) \|$", re.M)


def documented() -> dict[str, str]:
    """Example file → the status examples/README.md documents for it."""
    text = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    return {name: status for name, _, status in ROW.findall(text)}


def settings_of(name: str) -> dict[str, str]:
    """The settings examples/README.md says an example needs (`NAME=value` in its row)."""
    text = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    cell = next(needs for found, needs, _ in ROW.findall(text) if found == name)
    return dict(pair.split("=", 1) for pair in re.findall(r"`(AWE_\w+=[^`]*)`", cell))


def run_example(name: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`awe run examples/NAME ARGS` with the settings its row names, and only those."""
    return run_awe(
        "run", f"examples/{name}", *args, home=home, env=awe_env(home, **settings_of(name))
    )


def workspace(tmp_path: Path) -> Path:
    """A fresh folder holding examples/ and the README, as a checkout's root does."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    shutil.copy(EXAMPLES.parent / "README.md", tmp_path / "README.md")
    return tmp_path


def test_every_example_is_documented() -> None:
    """Each example file has a row (with a status) in examples/README.md, and no row is stale."""
    assert set(documented()) == {p.name for p in EXAMPLES.glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(documented()))
def test_example_runs_with_documented_status(tmp_path: Path, name: str) -> None:
    """`awe run examples/NAME --json` on a fresh home gives the documented status and exit code."""
    home = workspace(tmp_path)
    result = run_example(name, "--json", home=home)
    run = json.loads(result.stdout)
    expected = documented()[name]
    assert run["status"] == expected, result.stderr
    assert result.returncode == (0 if expected == "succeeded" else 1)
    assert "Traceback" not in result.stderr


def test_script_pipeline_dry_run_changes_nothing(tmp_path: Path) -> None:
    """--dry-run: the scripts see DRY_RUN=true, exit 10, and write no report."""
    home = workspace(tmp_path)
    result = run_awe("run", "examples/script-pipeline.yaml", "--dry-run", "--json", home=home)
    run = json.loads(result.stdout)
    assert (result.returncode, run["status"]) == (0, "succeeded")
    assert run["outputs"]["dry_run"] is True
    assert run["outputs"]["report"].startswith("would write")
    assert not (home / ".awe" / "example-pipeline").exists()
    real = json.loads(run_awe("run", "examples/script-pipeline.yaml", "--json", home=home).stdout)
    report = home / real["outputs"]["report"]
    assert report.read_text(encoding="utf-8").strip() == real["outputs"]["facts"]


def test_http_fanout_reports_each_answer_in_order(tmp_path: Path) -> None:
    """The fan-out's statuses follow the order of its paths, the 404 included."""
    home = workspace(tmp_path)
    run = json.loads(run_example("http-fanout.yaml", "--json", home=home).stdout)
    assert run["outputs"] == {"statuses": [200, 200, 404], "ok": 2}


def test_examples_fail_clearly_without_their_settings(tmp_path: Path) -> None:
    """Without the setting its row names, an example that needs one fails and says which."""
    home = workspace(tmp_path)
    run = json.loads(run_awe("run", "examples/http-fanout.yaml", "--json", home=home).stdout)
    fetch = next(s for s in run["steps"] if s["step_key"] == "fetch")
    assert (run["status"], fetch["error_category"]) == ("failed", "network_policy")
    assert "AWE_HTTP_ALLOWED_HOSTS" in fetch["error_message"]


def test_dead_letter_walkthrough(tmp_path: Path) -> None:
    """The README's walk-through: fail into the DLQ, fix, requeue, burst worker, succeeded."""
    home = workspace(tmp_path)
    failed = json.loads(run_awe("run", "examples/dead-letter.yaml", "--json", home=home).stdout)
    (dead,) = json.loads(run_awe("dlq", "list", "--json", home=home).stdout)
    assert (dead["step_key"], dead["error_category"], len(dead["errors"])) == (
        "load_config",
        "exit_code:4",
        2,
    )
    (home / ".awe").mkdir(exist_ok=True)  # AWE_HOME is the test's folder, not ./.awe
    (home / ".awe" / "dead-letter-example.fixed").touch()
    assert run_awe("dlq", "requeue", "--workflow", "dead-letter", home=home).returncode == 0
    assert run_awe("worker", "--burst", home=home).returncode == 0
    shown = json.loads(run_awe("runs", "show", failed["id"], "--json", home=home).stdout)
    assert shown["status"] == "succeeded"
    assert shown["outputs"] == {"result": "applied"}
    assert not (home / ".awe" / "dead-letter-example.fixed").exists()  # consumed for next time


def test_release_gate_branches(tmp_path: Path) -> None:
    """A new major version in production needs a sign-off; a bad version fails without retry."""
    home = workspace(tmp_path)
    major = run_awe(
        "run", "examples/release-gate.yaml", "-i", "environment=production",
        "-i", "version=2.0.0", "--json", home=home,
    )  # fmt: skip
    assert json.loads(major.stdout)["outputs"]["sign_off_needed"] is True
    bad = json.loads(
        run_awe("run", "examples/release-gate.yaml", "-i", "version=v2", "--json", home=home).stdout
    )
    semver = next(s for s in bad["steps"] if s["step_key"] == "semver")
    assert (bad["status"], semver["error_category"], semver["attempt"]) == (
        "failed",
        "exit_code:3",
        1,
    )


def test_nightly_maintenance_is_scheduled_when_pushed(tmp_path: Path) -> None:
    """Pushing the runbook creates its nightly schedule; triggering it makes a pinned run."""
    home = workspace(tmp_path)
    env = awe_env(home, **settings_of("nightly-maintenance.yaml"))
    pushed = run_awe("workflows", "push", "examples/nightly-maintenance.yaml", home=home, env=env)
    assert pushed.returncode == 0, pushed.stderr
    (schedule,) = json.loads(run_awe("schedules", "list", "--json", home=home).stdout)
    assert (schedule["name"], schedule["cron"], schedule["enabled"]) == (
        "nightly-maintenance",
        "0 3 * * *",
        True,
    )
    assert schedule["next_fire_at"].endswith("03:00:00+00:00")
    run_id = run_awe("schedules", "trigger", "nightly-maintenance", home=home).stdout.strip()
    assert run_awe("worker", "--burst", home=home, env=env).returncode == 0
    run = json.loads(run_awe("runs", "show", run_id, "--json", home=home).stdout)
    assert (run["status"], run["workflow_version"]) == ("succeeded", 1)
    assert run["outputs"]["report"]["database_at_head"] is True


def test_ask_docs_answers_from_the_repository_docs(tmp_path: Path) -> None:
    """ask-docs ingests the README and examples/README.md and cites what it retrieved."""
    home = workspace(tmp_path)
    question = "question=What does make test run?"
    result = run_example("ask-docs.yaml", "-i", question, "--json", home=home)
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded", result.stderr
    assert run["outputs"]["answer"]
    assert "README.md" in run["outputs"]["sources"]
    ingest = next(s for s in run["steps"] if s["step_key"] == "ingest")
    assert ingest["output"]["ready"] == 2


def test_extract_gives_schema_shaped_json(tmp_path: Path) -> None:
    """extract's output is JSON with every field of its schema, typed."""
    home = workspace(tmp_path)
    run = json.loads(run_awe("run", "examples/extract.yaml", "--json", home=home).stdout)
    fields = run["outputs"]["fields"]
    assert set(fields) == {"customer", "items", "total", "currency"}
    assert isinstance(fields["items"], int)
    assert isinstance(fields["total"], int | float)
