"""Retries, leases, the dead-letter queue, resume, fork, cancellation and queue limits."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from awe.engine import results
from awe.engine.client import DeadLetterFilter, Engine
from awe.engine.errors import LeaseLost
from awe.engine.retry import RetryPolicy
from awe.engine.worker import Worker, WorkerOptions
from awe.storage import queue as queue_sql
from awe.storage.database import Database
from tests.integration.conftest import Drain
from tests.integration.test_engine_dag import shell, spec
from tests.support import kinds
from tests.support.clock import ManualClock
from tests.support.wait import wait_until


def test_backoff_schedule_and_jitter_bounds() -> None:
    """Default delays are 1, 5, 25, 125 s (the last repeats), each within ±20 % jitter."""
    policy = RetryPolicy(rng=random.Random(7))  # noqa: S311 - seeded for the test
    for attempt, base in [(1, 1), (2, 5), (3, 25), (4, 125), (5, 125), (9, 125)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert max(delays) - min(delays) > base * 0.2  # jitter really varies
    assert RetryPolicy(jitter=0).delay(2) == 5
    assert policy.can_retry(4)
    assert not policy.can_retry(5)


def test_retry_waits_out_backoff_on_injected_clock(
    database: Database, clock: ManualClock, drain: Drain, tmp_path: Path
) -> None:
    """A failing step is retried only after its backoff has passed, and succeeds on attempt 3."""
    engine = Engine(database, clock=clock)
    marker = tmp_path / "count"
    command = f'echo x >> {marker}; [ "$AWE_ATTEMPT" -ge 3 ]'
    run_id = engine.submit(
        spec(shell("flaky", command, retry={"backoff": [10, 20], "jitter": 0.2, "max_attempts": 5}))
    )
    assert drain(clock=clock) == 1
    step = engine.get_run(run_id).step("flaky")
    assert (step.status, step.attempt, step.error_category) == ("queued", 1, "exit_code:1")
    assert step.run_after is not None
    wait = (step.run_after - clock.now()).total_seconds()
    assert 8 <= wait <= 12
    assert drain(clock=clock) == 0  # not yet due
    clock.advance(12)
    assert drain(clock=clock) == 1
    step = engine.get_run(run_id).step("flaky")
    assert 16 <= (step.run_after - clock.now()).total_seconds() <= 24  # type: ignore[operator]
    clock.advance(24)
    assert drain(clock=clock) == 1
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("flaky").attempt == 3
    assert [e["attempt"] for e in run.step("flaky").errors] == [1, 2]
    assert marker.read_text().count("x") == 3


def test_stale_worker_completion_is_refused(database: Database, clock: ManualClock) -> None:
    """After worker A's lease expires and B takes the step over, A's completion is refused: it
    names its own claim's lease token, which is no longer the step's."""
    engine = Engine(database, clock=clock)
    run_id = engine.submit(spec({"id": "a", "kind": "noop"}))
    with database.write() as conn:
        (a_step,) = queue_sql.claim(
            conn, owner="A", queues=["default"], limit=1, now=clock.now(), lease_seconds=0.2
        )
    clock.advance(6)  # SQLite reads the worker's clock
    time.sleep(0.3)  # PostgreSQL reads its own
    with database.write() as conn:
        assert results.reap_one(conn, step_id=a_step.id, now=clock.now()) == "queued"
    with database.write() as conn:
        (b_step,) = queue_sql.claim(
            conn, owner="B", queues=["default"], limit=1, now=clock.now(), lease_seconds=30
        )
    assert b_step.attempt == 2
    assert b_step.lease_token != a_step.lease_token
    with pytest.raises(LeaseLost), database.write() as conn:
        results.complete(
            conn,
            run_id=run_id,
            step_id=a_step.id,
            token=a_step.lease_token,
            attempt=1,
            output={"by": "A"},
            now=clock.now(),
        )
    with database.write() as conn:
        results.complete(
            conn,
            run_id=run_id,
            step_id=b_step.id,
            token=b_step.lease_token,
            attempt=2,
            output={"by": "B"},
            now=clock.now(),
        )
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("a").output == {"by": "B"}
    assert run.step("a").errors[0]["category"] == "lease_lost"


def test_dead_letter_queue_filter_and_requeue(engine: Engine, drain: Drain, tmp_path: Path) -> None:
    """Non-retryable failures land in the DLQ with category and history; requeue by filter fixes."""
    gate = tmp_path / "fixed"
    first = engine.submit(spec(shell("load", f"test -f {gate} || exit 3"), name="etl"))
    other = engine.submit(spec(shell("x", "exit 5"), name="other"))
    drain()
    dead = engine.dead_letters()
    assert {(d.run_id, d.error_category) for d in dead} == {
        (first, "exit_code:3"),
        (other, "exit_code:5"),
    }
    only = engine.dead_letters(DeadLetterFilter(workflow="etl", category="exit_code:3"))
    assert [d.run_id for d in only] == [first]
    assert engine.dead_letters(DeadLetterFilter(older_than=timedelta(hours=1))) == []
    assert engine.get_run(first).status == "failed"
    gate.touch()
    assert engine.requeue(where=DeadLetterFilter(workflow="etl")) == [only[0].id]
    drain()
    run = engine.get_run(first)
    assert run.status == "succeeded"
    assert run.step("load").errors[0]["category"] == "exit_code:3"  # history kept
    assert engine.get_run(other).status == "failed"
    assert engine.requeue([dead_other.id for dead_other in engine.dead_letters()]) != []


def test_resume_reruns_only_failed_part(engine: Engine, drain: Drain, tmp_path: Path) -> None:
    """resume re-queues the dead step and what it blocked; finished steps are not run again.

    The resumed step gets a fresh budget of attempts, and its attempt numbers go on (2, not 1
    again), so its history has one entry per attempt."""
    gate = tmp_path / "ok"
    run_id = engine.submit(
        spec(
            shell("a", "echo a"),
            shell("b", f"test -f {gate} || exit 2", needs=["a"]),
            shell("c", "echo c", needs=["b"]),
        )
    )
    drain()
    run = engine.get_run(run_id)
    assert (run.status, run.step("c").status) == ("failed", "skipped")
    gate.touch()
    engine.resume(run_id)
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert [s.attempt for s in run.steps] == [1, 2, 1]
    assert [s.tries for s in run.steps] == [1, 1, 1]
    assert [e["attempt"] for e in run.step("b").errors] == [1]
    assert run.step("a").finished_at < run.step("b").finished_at  # type: ignore[operator]


def test_fork_reuses_upstream_outputs(engine: Engine, drain: Drain, tmp_path: Path) -> None:
    """A fork from a middle step reuses earlier outputs (no re-execution) and re-runs the rest."""
    counter = tmp_path / "a-ran"
    run_id = engine.submit(
        spec(
            shell("a", f"echo run >> {counter}; echo A"),
            {
                "id": "b",
                "kind": "noop",
                "needs": ["a"],
                "with": {"from_a": "{{ steps.a.output.stdout | trim }}"},
            },
            {"id": "c", "kind": "noop", "needs": ["b"]},
        )
    )
    drain()
    fork_id = engine.fork(run_id, "b")
    assert drain() == 2
    fork = engine.get_run(fork_id)
    assert fork.status == "succeeded"
    assert fork.parent_run_id == run_id
    assert fork.step("a").attempt == 0  # reused, never executed in the fork
    assert fork.step("b").output == {"from_a": "A"}
    assert counter.read_text().count("run") == 1


def test_cancel_kills_process_tree_and_cancels_queued(
    engine: Engine, database: Database, tmp_path: Path
) -> None:
    """Cancelling a run kills a running shell step's whole process group and cancels the rest."""
    pid_file = tmp_path / "child.pid"
    long = shell("long", f"sleep 300 & echo $! > {pid_file}; wait")
    long["with"]["kill_grace"] = 1
    run_id = engine.submit(spec(long, {"id": "after", "kind": "noop", "needs": ["long"]}))
    worker = Worker(database, WorkerOptions(concurrency=2, lease_seconds=3, poll_seconds=0.02))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip())
        child = int(pid_file.read_text())
        assert psutil.pid_exists(child)
        engine.cancel(run_id)
        wait_until(lambda: engine.get_run(run_id).step("long").status == "cancelled")
        wait_until(
            lambda: (
                not psutil.pid_exists(child)
                or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
            )
        )
    finally:
        worker.stop()
        thread.join(timeout=30)
    run = engine.get_run(run_id)
    assert run.status == "cancelled"
    assert run.step("after").status == "cancelled"
    assert run.step("long").error_category == "cancelled"


def test_queue_concurrency_limit_is_never_exceeded(engine: Engine, database: Database) -> None:
    """With a limit of 3 on a queue, two workers of 4 slots each never run more than 3 at once."""
    engine.set_queue_limits("limited", concurrency=3)
    for i in range(12):
        engine.submit(
            spec(
                {
                    "id": "t",
                    "kind": "python",
                    "with": {
                        "function": "tests.support.kinds:track",
                        "kwargs": {"group": f"limit-{database.dialect}", "seconds": 0.15},
                    },
                }
            ),
            queue="limited",
            idempotency_key=f"k{i}",
        )
    workers = [
        Worker(database, WorkerOptions(queues=["limited"], concurrency=4, poll_seconds=0.01))
        for _ in range(2)
    ]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(w.executed for w in workers) == 12
    assert kinds.peak[f"limit-{database.dialect}"] == 3
    assert all(r.status == "succeeded" for r in engine.list_runs())


def test_rate_limit_is_a_token_bucket(database: Database, clock: ManualClock) -> None:
    """A rate of 2/s with burst 2 lets 2 steps start, then one more per half second."""
    engine = Engine(database, clock=clock)
    engine.set_queue_limits("slow", rate_per_second=2, burst=2)
    for i in range(6):
        engine.submit(spec({"id": "a", "kind": "noop"}), queue="slow", idempotency_key=f"r{i}")

    def claim() -> int:
        with database.write() as conn:
            return len(
                queue_sql.claim(
                    conn, owner="w", queues=["slow"], limit=10, now=clock.now(), lease_seconds=30
                )
            )

    assert claim() == 2
    assert claim() == 0
    clock.advance(0.5)
    assert claim() == 1
    clock.advance(10)
    assert claim() == 2  # the bucket holds at most the burst


def test_immediate_retries_all_run_in_one_drain(engine: Engine, drain: Drain) -> None:
    """A retry with no backoff may be claimed again, by the same worker, before the failed
    attempt's result is recorded; both attempts are tracked, so one drain takes the step
    through all its attempts to the DLQ (repeated: the overlap depends on thread timing)."""
    retry = {"max_attempts": 3, "backoff": [0], "jitter": 0}
    seen = set()
    for i in range(20):
        # Failing after 0 to 19 ms sweeps the result's recording across the claim loop's ticks.
        failing = {
            "id": "a",
            "kind": "python",
            "with": {"function": "tests.support.kinds:late_boom", "args": [(i % 20) / 1000]},
        }
        run_id = engine.submit(spec({**failing, "retry": retry}))
        drain()
        step = engine.get_run(run_id).step("a")
        seen.add((step.status, step.attempt))
    assert seen == {("dead", 3)}
