"""Workers killed with SIGKILL, and a database that goes away: the work still gets done."""

from __future__ import annotations

import collections
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from awe.engine.client import Engine
from awe.storage.database import Database
from awe.storage.engine_models import RunEvent, Step
from tests.chaos.conftest import WorkerProcesses
from tests.conftest import PostgresServer
from tests.support.wait import wait_until


def test_kill_worker_mid_step_other_takes_over(
    engine: Engine, database: Database, workers: WorkerProcesses, tmp_path: Path
) -> None:
    """Kill -9 the worker running a long step: another re-runs it, finished steps are not re-run."""
    orphan = tmp_path / "orphan.pid"
    run_id = engine.submit(
        {
            "name": "failover",
            "steps": [
                {"id": "first", "kind": "shell", "with": {"command": "echo first"}},
                {
                    "id": "long",
                    "kind": "shell",
                    "needs": ["first"],
                    "with": {
                        "command": f'[ "$AWE_ATTEMPT" = 1 ] && echo $$ > {orphan} && sleep 60; '
                        "echo finished"
                    },
                },
                {"id": "last", "kind": "noop", "needs": ["long"]},
            ],
        }
    )
    workers.start(lease=1.5)
    workers.start(lease=1.5)

    def holder() -> str | None:
        with database.read() as conn:
            return conn.execute(
                select(Step.lease_owner).where(
                    Step.run_id == run_id, Step.step_key == "long", Step.status == "running"
                )
            ).scalar()

    wait_until(lambda: orphan.exists() and holder(), timeout=60, what="the long step to start")
    owner_pid = int(str(holder()).split(":")[1])
    victim = next(p for p in workers.procs if p.pid == owner_pid)
    workers.kill(victim)
    try:
        wait_until(
            lambda: engine.get_run(run_id).status == "succeeded", timeout=60, what="failover"
        )
    finally:
        os.killpg(int(orphan.read_text()), signal.SIGKILL)  # the killed worker's shell, orphaned
    run = engine.get_run(run_id)
    assert [(s.step_key, s.attempt) for s in run.steps] == [("first", 1), ("long", 2), ("last", 1)]
    assert run.step("long").errors[0]["category"] == "lease_lost"
    assert victim.returncode == -signal.SIGKILL


def test_random_sigkills_lose_no_run(
    engine: Engine, database: Database, workers: WorkerProcesses, tmp_path: Path
) -> None:
    """200 small DAG runs while workers are SIGKILLed at random and restarted: all succeed, every
    side effect happens at least once, and every step is recorded complete exactly once."""
    effects = tmp_path / "effects.log"
    step = {"kind": "shell", "with": {"command": f'echo "$AWE_IDEMPOTENCY_KEY" >> {effects}'}}
    spec = {
        "name": "chaos",
        "steps": [
            {"id": "a", **step},
            {"id": "b", "needs": ["a"], **step},
            {"id": "c", "needs": ["a"], **step},
            {"id": "d", "needs": ["b", "c"], **step},
        ],
    }
    run_ids = [engine.submit(spec, idempotency_key=f"chaos-{i}") for i in range(200)]
    rng = random.Random(42)  # noqa: S311 - chaos schedule, not security
    for _ in range(3):
        workers.start(lease=1.0)
    kills = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if all(r.status == "succeeded" for r in engine.list_runs(limit=1000)):
            break
        time.sleep(rng.uniform(0.2, 0.6))
        alive = workers.alive()
        if alive and kills < 15:
            workers.kill(rng.choice(alive))
            kills += 1
            workers.start(lease=1.0)
    runs = engine.list_runs(limit=1000)
    assert len(runs) == 200
    assert collections.Counter(r.status for r in runs) == {"succeeded": 200}, workers.log_text()[
        -3000:
    ]
    assert kills >= 5
    done = set(effects.read_text().split())
    assert done == {f"{run_id}/{key}" for run_id in run_ids for key in "abcd"}
    with database.read() as conn:
        completions = conn.execute(
            select(RunEvent.run_id, RunEvent.step_key).where(
                RunEvent.type == "state",
                RunEvent.message.like("% succeeded"),
                RunEvent.step_key.is_not(None),
            )
        ).all()
    counts = collections.Counter(completions)
    assert len(counts) == 800
    assert set(counts.values()) == {1}


def test_database_outage_is_ridden_out(
    backend: str,
    engine: Engine,
    database: Database,
    workers: WorkerProcesses,
    request: pytest.FixtureRequest,
) -> None:
    """The database goes away mid-run (PostgreSQL stopped and started; SQLite locked exclusively):
    workers log it, reconnect with backoff, and finish the run."""
    run_id = engine.submit(
        {
            "name": "outage",
            "steps": [
                {
                    "id": f"s{i}",
                    "kind": "sleep",
                    "with": {"seconds": 0.3},
                    **({"needs": [f"s{i - 1}"]} if i else {}),
                }
                for i in range(8)
            ],
        }
    )
    workers.start(lease=20)
    wait_until(
        lambda: engine.get_run(run_id).status == "running", timeout=60, what="the run to start"
    )
    if backend == "postgres":
        server: PostgresServer = request.getfixturevalue("pg_server")
        server.restart(down_seconds=3)
        database.dispose()  # the test's own pool holds dead connections too
    else:
        path = str(database.url.database)
        blocker = sqlite3.connect(path, timeout=10)
        blocker.execute("BEGIN EXCLUSIVE")
        time.sleep(7)  # longer than the 5 s busy timeout: workers see 'database is locked'
        blocker.rollback()
        blocker.close()
    wait_until(
        lambda: engine.get_run(run_id).status == "succeeded", timeout=120, what="the run to finish"
    )
    assert "database unavailable" in workers.log_text()
