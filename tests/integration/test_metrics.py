"""The series awe exposes: what workers count as it happens (attempts by outcome, dead steps,
durations, queue wait, reaped leases, limited claims, runs finished), what the API reads from
the database at scrape time, and that ``promtool check metrics`` finds nothing to say about it."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text as sql

from awe.api.app import create_app
from awe.core import metrics
from awe.core.clock import SystemClock
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.storage import queue as queue_sql
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain

REGISTRY = metrics.REGISTRY


def value(name: str, **labels: str) -> float:
    """The current value of one series of this process (0 when it has none yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def flow(name: str, queue: str = "default") -> dict[str, object]:
    """A two-step workflow: one step that succeeds, one that fails for good."""
    return {
        "name": name,
        "queue": queue,
        "steps": [
            {"id": "ok", "kind": "noop"},
            {
                "id": "bad",
                "kind": "python",
                "with": {"function": "tests.support.kinds:boom"},
                "retry": {"max_attempts": 2, "backoff": [0]},
            },
        ],
    }


def test_worker_counts_attempts_dead_steps_durations_and_finished_runs(
    engine: Engine, drain: Drain, database: Database
) -> None:
    """One run of a step that succeeds and one that fails twice: the worker counts one
    succeeded attempt, one retrying, one dead; one dead step by its category; one failed run of
    the workflow; and a duration and a queue wait for each attempt."""
    queue = f"metrics-{database.dialect}"
    labels = {"queue": queue, "kind": "python"}
    before = {
        "retrying": value("awe_step_attempts_total", **labels, outcome="retrying"),
        "dead": value("awe_step_attempts_total", **labels, outcome="dead"),
        "ok": value("awe_step_attempts_total", queue=queue, kind="noop", outcome="succeeded"),
        "dead_steps": value("awe_steps_dead_total", queue=queue, category="exception:RuntimeError"),
        "runs": value("awe_runs_finished_total", workflow=f"m-{queue}", status="failed"),
        "durations": value("awe_step_duration_seconds_count", **labels),
        "waits": value("awe_step_queue_wait_seconds_count", **labels),
    }
    engine.submit(flow(f"m-{queue}", queue), {})
    drain(queues=[queue])
    assert value("awe_step_attempts_total", **labels, outcome="retrying") == before["retrying"] + 1
    assert value("awe_step_attempts_total", **labels, outcome="dead") == before["dead"] + 1
    assert (
        value("awe_step_attempts_total", queue=queue, kind="noop", outcome="succeeded")
        == before["ok"] + 1
    )
    assert (
        value("awe_steps_dead_total", queue=queue, category="exception:RuntimeError")
        == before["dead_steps"] + 1
    )
    assert (
        value("awe_runs_finished_total", workflow=f"m-{queue}", status="failed")
        == before["runs"] + 1
    )
    assert value("awe_step_duration_seconds_count", **labels) == before["durations"] + 2
    assert value("awe_step_queue_wait_seconds_count", **labels) == before["waits"] + 2


def test_a_reaped_lease_and_a_rate_limited_claim_are_counted(
    engine: Engine, database: Database
) -> None:
    """A lease whose worker vanished is counted when the reaper takes it back; a claim that a
    queue's rate or concurrency limit holds back while more steps are ready is counted under
    that limit's name, and one that leaves nothing ready behind is not counted."""
    clock = SystemClock()
    queue = f"reap-{database.dialect}"
    for _ in range(3):
        engine.submit({"name": "r", "queue": queue, "steps": [{"id": "a", "kind": "noop"}]}, {})
    engine.set_queue_limits(queue, rate_per_second=0.001, burst=1)
    reaped, limited = (
        value("awe_lease_expiries_total", queue=queue),
        value("awe_claims_limited_total", queue=queue, limit="rate"),
    )
    with database.write() as conn:
        got = queue_sql.claim(
            conn, owner="gone", queues=[queue], limit=3, now=clock.now(), lease_seconds=0.5
        )
    assert len(got) == 1
    assert value("awe_claims_limited_total", queue=queue, limit="rate") == limited + 1
    # A concurrency limit holding back ready steps counts under its own name; a limit that
    # leaves nothing ready behind (here the last step) counts nothing.
    capped = f"cap-{database.dialect}"
    for _ in range(2):
        engine.submit({"name": "c", "queue": capped, "steps": [{"id": "a", "kind": "noop"}]}, {})
    engine.set_queue_limits(capped, concurrency=1)
    held = value("awe_claims_limited_total", queue=capped, limit="concurrency")
    with database.write() as conn:
        first = queue_sql.claim(
            conn, owner="w", queues=[capped], limit=3, now=clock.now(), lease_seconds=30
        )
    assert len(first) == 1
    assert value("awe_claims_limited_total", queue=capped, limit="concurrency") == held + 1
    engine.set_queue_limits(capped, concurrency=5)
    with database.write() as conn:
        rest = queue_sql.claim(
            conn, owner="w", queues=[capped], limit=1, now=clock.now(), lease_seconds=30
        )
    assert len(rest) == 1
    for limit_name in ("concurrency", "rate"):
        assert value("awe_claims_limited_total", queue=capped, limit=limit_name) == (
            held + 1 if limit_name == "concurrency" else 0
        )
    time.sleep(1.2)  # the lease (half a second) runs out: the database's clock on PostgreSQL
    expired = engine.expired_leases()
    assert expired == [got[0].id]
    assert engine.reap(expired[0]) == "queued"
    assert value("awe_lease_expiries_total", queue=queue) == reaped + 1


def test_a_transaction_that_rolls_back_counts_nothing(database: Database) -> None:
    """What a transaction counted is dropped when it rolls back, and counted once it commits."""
    before = value("awe_lease_expiries_total", queue="rolled-back")

    def count_then_fail() -> None:
        with database.write() as conn:
            metrics.after_commit(conn, metrics.LEASE_EXPIRIES.labels("rolled-back").inc)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        count_then_fail()
    assert value("awe_lease_expiries_total", queue="rolled-back") == before
    with database.write() as conn:
        metrics.after_commit(conn, metrics.LEASE_EXPIRIES.labels("rolled-back").inc)
    assert value("awe_lease_expiries_total", queue="rolled-back") == before + 1


def test_a_savepoint_that_rolls_back_drops_only_its_own_counts(database: Database) -> None:
    """What a failed savepoint counted is dropped (as the worker does when applying one result
    fails), while what the transaction counted before and after it still counts at commit."""
    names = ("sp-before", "sp-inside", "sp-after")
    before = {name: value("awe_lease_expiries_total", queue=name) for name in names}
    with database.write() as conn:
        metrics.after_commit(conn, metrics.LEASE_EXPIRIES.labels("sp-before").inc)
        position = metrics.mark(conn)
        try:
            with conn.begin_nested():
                metrics.after_commit(conn, metrics.LEASE_EXPIRIES.labels("sp-inside").inc)
                raise RuntimeError("apply failed")
        except RuntimeError:
            pass  # the savepoint rolled back; the transaction goes on
        metrics.drop_since(conn, position)
        metrics.after_commit(conn, metrics.LEASE_EXPIRIES.labels("sp-after").inc)
        assert value("awe_lease_expiries_total", queue="sp-before") == before["sp-before"]
    assert value("awe_lease_expiries_total", queue="sp-before") == before["sp-before"] + 1
    assert value("awe_lease_expiries_total", queue="sp-inside") == before["sp-inside"]
    assert value("awe_lease_expiries_total", queue="sp-after") == before["sp-after"] + 1


def test_the_api_exposes_everything_and_promtool_finds_nothing_wrong(
    engine: Engine, drain: Drain, database: Database, settings: Settings
) -> None:
    """After a run, /metrics has the build info, database up and size, the dead-letter age,
    the workflow's last run, documents by state, the worker's counters and the queue gauges;
    and ``promtool check metrics`` prints no problem about any of it."""
    engine.submit(flow("api-metrics"), {})
    drain()
    with TestClient(create_app(settings, db=database)) as client:
        client.get("/public/status")  # a request for the API's histogram
        text = client.get("/metrics").text
    backend = "sqlite" if database.is_sqlite else "postgresql"
    for expected in (
        f'awe_build_info{{backend="{backend}",version=',
        "awe_database_up 1.0",
        "awe_database_size_bytes ",
        "awe_dead_letter_oldest_age_seconds ",
        'awe_workflow_last_run_timestamp_seconds{workflow="api-metrics"}',
        "# TYPE awe_knowledge_documents gauge",
        'awe_step_attempts_total{kind="noop",outcome="succeeded",queue="default"}',
        'awe_runs_finished_total{status="failed",workflow="api-metrics"}',
        "awe_step_duration_seconds_bucket",
        "# TYPE awe_queue_depth gauge",
        "awe_http_request_duration_seconds_bucket",
    ):
        assert expected in text, expected
    assert 'awe_workflow_last_success_timestamp_seconds{workflow="api-metrics"}' not in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: .ci/run installs Debian's prometheus package"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_a_database_that_refuses_a_query_or_is_down_still_gives_a_scrape(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """A table the database refuses to read (here dropped) costs only that collector's series,
    never a 500; a database that does not answer gives ``awe_database_up 0``, the process's own
    series, and no stale engine gauges."""
    cascade = "" if database.is_sqlite else " CASCADE"
    with database.write() as conn:
        conn.execute(sql(f"DROP TABLE documents{cascade}"))
    with TestClient(create_app(settings, db=database)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert "awe_database_up 1.0" in answer.text
    assert "# TYPE awe_queue_depth gauge" in answer.text
    assert "awe_knowledge_documents" not in answer.text
    down = make_settings(tmp_path / "down", database_url="postgresql://awe@127.0.0.1:9/awe")
    with TestClient(create_app(down)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert "awe_database_up 0.0" in answer.text
    assert "awe_build_info{" in answer.text
    assert "awe_queue_depth" not in answer.text
    assert "awe_dead_letter_oldest_age_seconds" not in answer.text
