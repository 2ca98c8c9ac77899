"""The shipped runbooks on SQLite and PostgreSQL: they validate, install once (schedules off),
and each runs to success on a healthy home with a real worker whose ``awe`` steps run the real
CLI; a failing checklist reports the failed check with its fix, notifies, and fails the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from awe.core.config import Settings
from awe.engine.client import Engine
from awe.engine.files import load_text
from awe.engine.registry import default_registry
from awe.services import installation, runbooks, schedules, workflows
from awe.services.audit import SYSTEM
from awe.storage.database import Database, create_database
from tests.conftest import make_settings
from tests.support.servers import HttpServer, Reply, http_server
from tests.support.wait import wait_until
from tests.support.workers import live_worker

NAMES = ["awe-daily-checklist", "awe-nightly", "awe-verify", "awe-weekly-checklist"]


@pytest.fixture
def home(tmp_path: Path, db_url: str) -> tuple[Settings, Database]:
    """A home set up the way `awe setup` leaves it, its settings naming the database (as a
    deployed worker's do, so the runbooks' `awe` steps reach the same one)."""
    settings = make_settings(tmp_path, database_url=db_url, http_allowed_hosts="127.0.0.1")
    db = create_database(settings)
    installation.run_setup(settings, lambda: db, actor=SYSTEM)
    yield settings, db
    db.dispose()


def run_stored(db: Database, settings: Settings, name: str, **inputs: Any) -> Any:
    """Start the stored workflow, let a live worker (4 slots) finish it; the run."""
    stored = workflows.get(db, name)
    engine = Engine(db)
    run_id = engine.submit(stored.spec, inputs, workflow_version=stored.version, trusted=True)
    with live_worker(db, ["default"], concurrency=4, settings=settings):
        wait_until(
            lambda: engine.get_run(run_id).status in ("succeeded", "failed"),
            timeout=300,
            what=f"{name} to finish",
        )
    return engine.get_run(run_id)


def test_shipped_runbooks_validate_and_install_once_with_schedules_off(
    home: tuple[Settings, Database],
) -> None:
    """Every shipped file validates; setup stored each (pushed by the operator, so trusted),
    installing again makes no version, the schedules start paused, and one the operator turned
    on stays on through a reinstall."""
    _, db = home
    for file_name, source in runbooks.shipped().items():
        load_text(source, source=file_name, known_kind=default_registry.knows)
    stored = {v.name: v for v in workflows.latest_versions(db)}
    assert sorted(stored) == NAMES
    assert all(v.trusted and v.version == 1 for v in stored.values())
    again = runbooks.install(db, actor=SYSTEM)
    assert [r.created for r in again] == [False] * 4
    paused = {s.name: s.enabled for s in schedules.list_schedules(db)}
    assert paused == {"awe-daily-checklist": False, "awe-nightly": False,
                      "awe-weekly-checklist": False}  # fmt: skip
    schedules.set_enabled(db, "awe-nightly", enabled=True, actor=SYSTEM)
    runbooks.install(db, actor=SYSTEM)
    assert {s.name: s.enabled for s in schedules.list_schedules(db)}["awe-nightly"] is True


def _sections(run: Any) -> dict[str, str]:
    report = run.step("report").output
    return {s["id"]: s["status"] for s in report["sections"]}


def test_every_runbook_runs_to_success_on_a_healthy_home(
    home: tuple[Settings, Database],
) -> None:
    """On a healthy home (set up, a live worker), the nightly backs up, proves the backup by a
    restore test, prunes and vacuums; then verify and both checklists pass. Each section's
    report came from the real command, and each command's run is recorded as the run's."""
    settings, db = home
    nightly = run_stored(db, settings, "awe-nightly")
    assert nightly.status == "succeeded", nightly
    assert _sections(nightly) == {"backup": "pass", "verify": "pass", "prune": "pass",
                                  "vacuum": "pass", "certificates": "skip"}  # fmt: skip
    made = nightly.step("backup").output["report"]["name"]
    assert (settings.effective_backup_dir / made).exists()
    tested = nightly.step("verify").output["report"]
    assert tested["restore_test"]["ok"] is True
    assert nightly.outputs["report"]["status"] == "pass"
    from awe.services import operations

    for name in ("awe-verify", "awe-daily-checklist", "awe-weekly-checklist"):
        run = run_stored(db, settings, name)
        assert run.status == "succeeded", (name, run.step("report").output)
        assert set(_sections(run).values()) <= {"pass", "skip"}, (name, _sections(run))
        awe_steps = [s for s in run.steps if s.kind == "awe"]
        assert {s.status for s in awe_steps} == {"succeeded"}
        assert all(s.output["exit_code"] == 0 for s in awe_steps), name
        assert all(isinstance(s.output["report"], (dict, list)) for s in awe_steps), name
        assert run.step("notify").status == "skipped"
        recorded = [e for e in operations.history(db, limit=200) if f"run:{run.id}" in e.actor]
        assert len(recorded) == len(awe_steps), name
        if name == "awe-verify":
            database_report = run.step("database").output["report"]
            checks = {c["id"] for c in database_report["checks"]}
            assert checks >= {"db.reachable", "db.migrations"}
    history = operations.history(db, command="backup create", limit=5)
    assert any(f"run:{nightly.id}" in e.actor for e in history)


def test_a_failing_checklist_reports_the_fix_notifies_and_fails(
    home: tuple[Settings, Database], backend: str
) -> None:
    """With the instance key readable by everyone, the daily checklist's health section fails
    naming the check and its fix; the webhook gets the report's text; the run fails with the
    verdict step dead (category runbook_failed, one attempt: not retried)."""
    if backend != "sqlite":
        pytest.skip("the failure path does not depend on the database")
    settings, db = home
    key = settings.home / "secrets" / "instance_key"
    key.chmod(0o644)
    server: HttpServer
    with http_server() as server:
        server.script("/hook", Reply(200, {}))
        run = run_stored(db, settings, "awe-daily-checklist", notify_webhook=f"{server.url}/hook")
        sent = server.seen("/hook")
    assert run.status == "failed"
    report = run.step("report").output
    health = next(s for s in report["sections"] if s["id"] == "health")
    assert health["status"] == "fail"
    assert any(
        "instance_key is 644" in p and "fix: awe doctor --fix" in p for p in health["problems"]
    ), health["problems"]
    assert len(sent) == 1
    assert "instance_key is 644" in sent[0].json()["text"]
    verdict = run.step("verdict")
    assert verdict.status == "dead"
    assert verdict.error_category == "runbook_failed"
    assert verdict.tries == 1


def test_a_failing_awe_step_is_retried_by_its_exit_code_then_dead(
    home: tuple[Settings, Database], backend: str
) -> None:
    """An ``awe`` step whose command fails goes by the command's exit code: 1 is retried, and
    the dead step's error names the command and what it printed; nothing is left running."""
    if backend != "sqlite":
        pytest.skip("exit codes do not depend on the database")
    settings, db = home
    spec = {
        "name": "broken-upkeep",
        "steps": [{"id": "v", "kind": "awe", "retry": {"max_attempts": 2, "backoff": [0]},
                   "with": {"command": "backup verify no-such-backup"}}],
    }  # fmt: skip
    engine = Engine(db)
    run_id = engine.submit(spec, {}, trusted=True)
    with live_worker(db, ["default"], settings=settings):
        wait_until(lambda: engine.get_run(run_id).status == "failed", timeout=120,
                   what="the run to fail")  # fmt: skip
    step = engine.get_run(run_id).step("v")
    assert step.lease_owner is None
    assert step.status == "dead"
    assert step.tries == 2
    assert step.error_category == "exit_code:1"
    assert step.error_message.startswith("awe backup verify no-such-backup exited 1: ")
    assert "no-such-backup" in step.error_message.split("exited 1: ", 1)[1]


def test_a_template_that_renders_to_a_refused_option_is_refused_when_it_runs(
    home: tuple[Settings, Database], backend: str
) -> None:
    """A list word from a template is one word, and it is checked when the step runs: an input
    of '--dest' where a backup's name goes makes the step dead (validation, not retried)
    before any command starts, and nothing is recorded as run."""
    if backend != "sqlite":
        pytest.skip("the check does not depend on the database")
    settings, db = home
    from awe.services import operations

    spec = {
        "name": "sneaky",
        "inputs": {"name": {"type": "string", "default": "latest"}},
        "steps": [{"id": "v", "kind": "awe",
                   "with": {"command": ["backup", "verify", "{{ inputs.name }}"]}}],
    }  # fmt: skip
    engine = Engine(db)
    before = len(operations.history(db, limit=200))
    run_id = engine.submit(spec, {"name": "--dest=/srv/share"}, trusted=True)
    with live_worker(db, ["default"], settings=settings):
        wait_until(lambda: engine.get_run(run_id).status == "failed", timeout=60,
                   what="the run to fail")  # fmt: skip
    step = engine.get_run(run_id).step("v")
    assert step.error_category == "validation"
    assert step.tries == 1
    assert "is not allowed here" in step.error_message or "may not be given" in step.error_message
    assert len(operations.history(db, limit=200)) == before
