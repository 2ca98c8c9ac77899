"""``awe doctor`` over real homes and databases: a healthy one passes; a broken one (secrets
readable by others, database behind head, steps waiting with no worker, a queue no worker
serves, an expired certificate, a lease nobody reaped) reports each problem with its fix and
fails; ``--fix`` repairs the modes and the lease and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from awe.core import crypto
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.ops import certs
from awe.ops.report import Report
from awe.services import doctor, signing
from awe.storage import migrate
from awe.storage.database import Database
from awe.storage.engine_models import Step
from tests.support.workers import live_worker

#: The AI checks load the local model: they have a test of their own (tests/e2e/test_ops_cli.py).
NO_AI = ["ai"]


def healthy(settings: Settings, database: Database) -> None:
    """A home as `awe setup` leaves it: private folders, the instance key recorded."""
    settings.home.chmod(0o700)
    signing.check_instance_key(database, crypto.instance_key(settings))


def run(settings: Settings, database: Database, *, fix: bool = False) -> Report:
    """Every check but the AI ones."""
    return doctor.check(settings, lambda: database, doctor.chosen([], NO_AI), fix=fix)


def by_id(report: Report) -> dict[str, tuple[str, str, str | None]]:
    """Each check's (status, message, fix)."""
    return {c.id: (c.status, c.message, c.fix) for c in report.checks}


def test_a_healthy_home_passes(settings: Settings, database: Database) -> None:
    """Set up, with a live worker and nothing waiting: no check fails or warns, exit 0 even
    with --strict; checks that do not apply to this backend are skipped, never passed."""
    healthy(settings, database)
    with live_worker(database, ["default"]):
        report = run(settings, database)
    found = by_id(report)
    problems = {k: v for k, v in found.items() if v[0] in ("fail", "warn")}
    # A fresh home has no backup yet (a warning by design) and no certificate (a skip).
    problems.pop("backups.last_verified", None)
    assert problems == {}
    assert report.exit_code() == 0
    assert found["tls.certificates"][0] == "skip"
    other = "db.postgres_version" if database.is_sqlite else "db.sqlite_wal"
    assert found[other][0] == "skip"
    assert report.as_dict()["summary"]["fail"] == 0


def test_a_broken_home_reports_each_problem_with_its_fix(
    settings: Settings, database: Database
) -> None:
    """Each problem (secrets readable by others, the database behind head, a step waiting
    with no worker and on a queue nobody serves, an expired certificate) is its check's
    failure, with the command that fixes it; exit code 1."""
    healthy(settings, database)
    secrets_folder = crypto.key_path(settings).parent
    secrets_folder.chmod(0o755)
    crypto.key_path(settings).chmod(0o644)
    folder = certs.folder_of(settings.home)
    past = datetime.now(UTC) - timedelta(days=400)
    certs.init_ca(folder, now=past - timedelta(days=1))
    certs.issue(folder, "old", days=30, now=past)
    engine = Engine(database)
    engine.submit({"name": "gpu-job", "steps": [{"id": "a", "kind": "noop", "queue": "gpu"}]})
    migrate.downgrade(database, "0010")
    report = run(settings, database)
    found = by_id(report)
    assert report.exit_code() == 1
    assert found["secrets.folder"][0] == "fail"
    assert "not 700" in found["secrets.folder"][1]
    assert "instance_key is 644" in found["secrets.folder"][1]
    assert "awe doctor --fix" in (found["secrets.folder"][2] or "")
    assert found["db.migrations"][0] == "fail"
    assert found["db.migrations"][2] == "awe db upgrade"
    assert found["engine.workers"][0] == "fail"
    assert "1 step(s) are ready and no worker is live" in found["engine.workers"][1]
    assert found["engine.unserved_queues"][0] == "fail"
    assert found["tls.certificates"][0] == "fail"
    assert "old expired" in found["tls.certificates"][1]
    assert found["tls.certificates"][2] == "awe certs rotate old"
    migrate.upgrade(database)


def test_a_queue_no_live_worker_serves_is_named(settings: Settings, database: Database) -> None:
    """A live worker serving 'default' and a ready step on 'gpu': the unserved check fails
    naming the queue and the worker command that would serve it."""
    healthy(settings, database)
    Engine(database).submit(
        {"name": "gpu-job", "steps": [{"id": "a", "kind": "noop", "queue": "gpu"}]}
    )
    with live_worker(database, ["default"]):
        found = by_id(run(settings, database))
    status, message, fix = found["engine.unserved_queues"]
    assert status == "fail"
    assert "gpu (1 ready)" in message
    assert fix == "awe worker --queues gpu"
    assert found["engine.workers"][0] == "pass"


def test_fix_repairs_modes_and_unreaped_leases_and_says_what_it_changed(
    settings: Settings, database: Database
) -> None:
    """--fix makes the secrets folder 700 and its files 600 (the CA's key too), the home 700,
    takes write access from others (never through a symlink), and reaps a step whose lease
    expired long ago; the report after it passes those checks and records what was changed."""
    healthy(settings, database)
    crypto.key_path(settings).parent.chmod(0o755)
    crypto.key_path(settings).chmod(0o644)
    settings.home.chmod(0o755)
    folder = certs.folder_of(settings.home)
    certs.init_ca(folder)
    (folder / "ca.key").chmod(0o644)
    private = settings.home.parent / f"{settings.home.name}-private.txt"
    private.write_text("not awe's")
    private.chmod(0o600)
    (settings.home / "link").symlink_to(private)
    loose = settings.home / "notes.txt"
    loose.write_text("x")
    loose.chmod(0o666)
    engine = Engine(database)
    run_id = engine.submit({"name": "one", "steps": [{"id": "a", "kind": "noop"}]})
    with database.write() as conn:
        conn.execute(
            update(Step)
            .where(Step.run_id == run_id)
            .values(status="running", lease_owner="gone", lease_token="t",
                    lease_expires_at=datetime.now(UTC) - timedelta(minutes=10))
        )  # fmt: skip
    before = by_id(run(settings, database))
    assert before["secrets.folder"][0] == "fail"
    assert before["fs.permissions"][0] == "fail"
    assert before["engine.expired_leases"][0] == "warn"
    report = run(settings, database, fix=True)
    after = {c.id: c for c in report.checks}
    for check_id in ("secrets.folder", "fs.permissions", "engine.expired_leases"):
        assert after[check_id].status == "pass", after[check_id]
        assert after[check_id].data["fixed"], check_id
    assert "chmod 600 instance_key" in after["secrets.folder"].data["fixed"]
    assert "chmod 600 ca.key" in after["secrets.folder"].data["fixed"]
    assert (folder / "ca.key").stat().st_mode & 0o777 == 0o600
    assert private.stat().st_mode & 0o777 == 0o600  # a symlink is never followed
    assert after["engine.expired_leases"].data["fixed"] == "reaped 1 step(s)"
    assert crypto.key_path(settings).stat().st_mode & 0o777 == 0o600
    assert loose.stat().st_mode & 0o777 == 0o664
    assert engine.get_run(run_id).step("a").status in ("queued", "dead")
    # Not repaired: what needs a person (there is no worker).
    assert after["engine.workers"].status != "pass"
    assert "fixed" not in after["engine.workers"].data


def test_unknown_groups_are_refused_and_a_database_outage_is_one_failure(
    settings: Settings, tmp_path: Path
) -> None:
    """--only with a name that is no group or check is refused with the groups; a database
    that does not answer fails db.reachable and every check that needs it is skipped with
    the reason (never passed)."""
    from awe.core.errors import ValidationFailed
    from awe.storage.database import create_database

    with pytest.raises(ValidationFailed, match="groups: configuration"):
        doctor.chosen(["databse"], [])
    down = create_database(settings, url="postgresql://nobody@127.0.0.1:1/none")
    report = doctor.check(settings, lambda: down, doctor.chosen(["database", "engine"], []))
    found = by_id(report)
    assert found["db.reachable"][0] == "fail"
    assert all(status == "skip" for key, (status, *_) in found.items() if key != "db.reachable")
    assert all(
        "did not answer" in message
        for key, (_, message, _) in found.items()
        if key != "db.reachable"
    )
    assert report.exit_code() == 1


def test_an_outage_fails_a_report_that_did_not_ask_for_the_database(
    settings: Settings,
) -> None:
    """`--only engine`, and the security check, with the database down: every check they
    ran is skipped, and the failed reachability is added so the report fails (exit 1)."""
    from awe.services import security_audit
    from awe.storage.database import create_database

    down = create_database(settings, url="postgresql://nobody@127.0.0.1:1/none")
    for report in (
        doctor.check(settings, lambda: down, doctor.chosen(["engine"], [])),
        security_audit.check(settings, lambda: down),
    ):
        assert report.checks[0].id == "db.reachable"
        assert report.checks[0].status == "fail"
        assert report.exit_code() == 1


def test_every_configured_llm_provider_is_asked(tmp_path: Path, backend: str) -> None:
    """The AI check asks each provider the settings configure, not only the default: the real
    local model and an Ollama (the real httpx client against a stand-in) answer; an Anthropic
    with nothing listening fails the check by name with its fix, and says the others answered."""
    if backend != "sqlite":
        pytest.skip("the AI checks do not use the database")
    from tests.conftest import make_settings
    from tests.support.ai_standins import ollama_server
    from tests.support.servers import free_port, http_server

    with http_server() as server:
        ollama_server(server, answer="OK")
        good = make_settings(tmp_path, ollama_url=server.url)
        report = doctor.check(good, lambda: None, doctor.chosen(["ai.llm"], []))  # type: ignore[arg-type,return-value]
        check = report.checks[0]
        assert check.status == "pass", check
        assert set(check.data["providers"]) == {"local", "ollama"}
        assert len(server.seen("/api/chat")) == 1
        bad = make_settings(
            tmp_path, ollama_url=server.url, anthropic_api_key="sk-test",
            anthropic_base_url=f"http://127.0.0.1:{free_port()}",
        )  # fmt: skip
        report = doctor.check(bad, lambda: None, doctor.chosen(["ai.llm"], []))  # type: ignore[arg-type,return-value]
    check = report.checks[0]
    assert check.status == "fail"
    assert check.message.startswith("anthropic did not answer")
    assert "(2 other(s) answered)" in check.message
    assert check.fix is not None
    assert "anthropic" in check.fix
    assert report.status == "fail"
