"""The engine's CLI as subprocesses: workers in burst mode, runs, the DLQ, two schedulers."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

from awe.engine.client import Engine
from awe.engine.scheduler import Scheduler
from awe.storage.database import Database
from tests.e2e.conftest import AWE, awe_env, run_awe
from tests.support.wait import wait_until


def test_runs_and_dlq_commands(tmp_path: Path, db_url: str, engine: Engine) -> None:
    """A burst worker runs submitted work; runs/dlq commands show, requeue and resume it."""
    gate = tmp_path / "gate"
    ok = engine.submit(
        {"name": "ok", "steps": [{"id": "a", "kind": "shell", "with": {"command": "echo hello"}}]}
    )
    bad = engine.submit(
        {
            "name": "etl",
            "steps": [
                {"id": "load", "kind": "shell", "with": {"command": f"test -f {gate} || exit 3"}}
            ],
        }
    )
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    burst = run_awe("worker", "--burst", "--concurrency", "2", home=tmp_path, env=env)
    assert burst.returncode == 0, burst.stderr

    listed = json.loads(run_awe("runs", "list", "--json", home=tmp_path, env=env).stdout)
    assert {r["id"]: r["status"] for r in listed} == {ok: "succeeded", bad: "failed"}
    shown = json.loads(run_awe("runs", "show", ok, "--json", home=tmp_path, env=env).stdout)
    assert shown["steps"][0]["output"]["stdout"] == "hello\n"
    human = run_awe("runs", "show", bad, home=tmp_path, env=env)
    assert "exit_code:3" in human.stdout
    events = run_awe("runs", "events", ok, home=tmp_path, env=env)
    assert "hello" in events.stdout
    assert "run succeeded" in events.stdout

    dead = json.loads(
        run_awe("dlq", "list", "--category", "exit_code:3", "--json", home=tmp_path, env=env).stdout
    )
    assert [d["run_id"] for d in dead] == [bad]
    nothing = run_awe("dlq", "requeue", home=tmp_path, env=env)
    assert nothing.returncode == 3
    assert "filter" in nothing.stderr
    gate.touch()
    requeued = run_awe("dlq", "requeue", "--workflow", "etl", "--json", home=tmp_path, env=env)
    assert json.loads(requeued.stdout)["requeued"] == [dead[0]["id"]]
    assert run_awe("worker", "--burst", home=tmp_path, env=env).returncode == 0
    assert engine.get_run(bad).status == "succeeded"

    refused = run_awe("runs", "cancel", ok, home=tmp_path, env=env)
    assert refused.returncode == 1
    assert "already succeeded" in refused.stderr
    missing = run_awe("runs", "show", "no-such-run", home=tmp_path, env=env)
    assert missing.returncode == 1
    assert "no run no-such-run" in missing.stderr
    workers = json.loads(
        run_awe("workers", "list", "--all", "--json", home=tmp_path, env=env).stdout
    )
    assert len(workers) == 2
    assert {w["status"] for w in workers} == {"stopped"}


def test_worker_exits_zero_on_sigterm_and_lists_while_running(tmp_path: Path, db_url: str) -> None:
    """A running worker shows in 'awe workers list'; SIGTERM makes it exit 0."""
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    proc = subprocess.Popen(
        [AWE, "worker", "--queues", "a,b"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def registered() -> list[dict[str, object]]:
            result = run_awe("workers", "list", "--json", home=tmp_path, env=env)
            return list(json.loads(result.stdout))

        wait_until(registered, what="the worker to register")
        listed = registered()
        assert listed[0]["queues"] == ["a", "b"]
        assert listed[0]["status"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_two_scheduler_processes_fire_each_time_once(
    tmp_path: Path, db_url: str, database: Database
) -> None:
    """Two 'awe scheduler' processes over a run of per-second fire times make one run per fire."""
    Scheduler(database).create(
        name="every-second",
        spec={"name": "tick", "steps": [{"id": "a", "kind": "noop"}]},
        cron="* * * * * */1",  # croniter's sixth field: seconds
    )
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    procs = [
        subprocess.Popen(
            [AWE, "scheduler", "--interval", "0.1", "--lease-seconds", "2"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    # At least three fires: on a loaded machine the processes take a while to start, and a
    # late tick collapses missed fire times into one run (the catch-up rule).
    wait_until(lambda: len(Engine(database).list_runs(limit=100)) >= 3, timeout=60, what="fires")
    time.sleep(1.5)  # both schedulers go on ticking side by side
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(timeout=30) == 0
    runs = Engine(database).list_runs(limit=100)
    # Keys are schedule:{id}:{fire_time}; the fire time is everything after the second colon.
    fires = sorted(datetime.fromisoformat(str(r.idempotency_key).split(":", 2)[2]) for r in runs)
    assert len(fires) >= 3
    assert len(set(fires)) == len(fires)  # no fire time made two runs
    # Fires fall on whole seconds; a tick delayed past the next second (a loaded machine) may
    # collapse two fire times into one run, which is the documented catch-up rule, not a bug.
    assert all(f.microsecond == 0 for f in fires)


def test_sigterm_releases_unfinished_steps(tmp_path: Path, db_url: str, engine: Engine) -> None:
    """SIGTERM with a step still running past the grace period: the worker gives the step back
    (the attempt does not count against its budget, though its number is kept) and exits 0; a
    later worker runs it."""
    run_id = engine.submit(
        {"name": "slow", "steps": [{"id": "a", "kind": "sleep", "with": {"seconds": 60}}]}
    )
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    proc = subprocess.Popen(
        [AWE, "worker", "--shutdown-grace", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: engine.get_run(run_id).steps[0].status == "running", what="the step")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    step = engine.get_run(run_id).steps[0]
    assert (step.status, step.tries, step.attempt, step.lease_owner) == ("queued", 0, 1, None)
    events = [e.message for e in engine.events(run_id)]
    assert "step a queued" in events[-1]
