"""Recording a batch of successes together (engine/completion.py), on both databases.

The set-based path must record exactly what the one-by-one path did: each step once, only by
the claim that holds its lease, its run ended once when nothing is left open, a join readied
once, events in order; and a value the database refuses costs only its own step.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select, update

from awe.core.clock import SystemClock
from awe.engine import completion, events
from awe.engine.client import Engine
from awe.engine.errors import Failure
from awe.engine.executor import Outcome
from awe.engine.worker import Worker, WorkerOptions
from awe.storage import queue as queue_sql
from awe.storage.database import Database
from awe.storage.engine_models import Step
from tests.support.wait import wait_until


def _fan(width: int) -> dict[str, object]:
    return {
        "name": f"fan{width}",
        "steps": [
            {"id": "root", "kind": "noop"},
            *(
                {"id": f"b{n}", "kind": "noop", "needs": ["root"], "with": {"n": n}}
                for n in range(width)
            ),
            {"id": "join", "kind": "noop", "needs": [f"b{n}" for n in range(width)]},
        ],
    }


class _SetPath:
    """Counts what the set-based path recorded, and whether it ever fell back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.done = 0
        real = completion.complete_many

        def counted(conn: Connection, batch: list[completion.Success], *, now: datetime) -> Any:
            recorded = real(conn, batch, now=now)
            self.done += len(recorded.done)
            return recorded

        monkeypatch.setattr(completion, "complete_many", counted)


@pytest.fixture
def set_path(monkeypatch: pytest.MonkeyPatch) -> _SetPath:
    """What the set-based path records during the test (a fallback records nothing there)."""
    return _SetPath(monkeypatch)


def _run_workers(database: Database, count: int, until: Callable[[], object]) -> None:
    workers = [
        Worker(database, WorkerOptions(concurrency=3, poll_seconds=0.005, lease_seconds=5.0))
        for _ in range(count)
    ]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        wait_until(until, timeout=120, what="every run to end")
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=30)


def test_runs_whose_last_steps_finish_in_two_workers_at_once_end_once(
    engine: Engine, database: Database, set_path: _SetPath
) -> None:
    """Two workers finish the parallel steps of the same runs at the same moment, each in its
    own transaction: every run still ends (the run lock orders them, so the second sees the
    first's step closed), its join ran once, and its events are numbered 1..n with every step's
    'succeeded' before the run's."""
    ids = [engine.submit(_fan(4)) for _ in range(30)]
    _run_workers(database, 2, lambda: all(engine.get_run(i).status == "succeeded" for i in ids))
    for run_id in ids:
        run = engine.get_run(run_id)
        expected = dict.fromkeys(["root", "b0", "b1", "b2", "b3", "join"], ("succeeded", 1))
        assert {s.step_key: (s.status, s.attempt) for s in run.steps} == expected
        seen = engine.events(run_id, limit=1000)
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
        states = [e.message for e in seen if e.type == "state"]
        assert states[-1] == "run succeeded"
        assert states.count("run succeeded") == 1
        assert states.count("step join succeeded") == 1
        assert states.index("step join queued") > max(
            states.index(f"step b{n} succeeded") for n in range(4)
        )


def test_a_wide_fan_out_readies_its_join_once_and_keeps_every_output(
    engine: Engine, database: Database, set_path: _SetPath
) -> None:
    """A 300-wide fan-out drained by two workers (the join's needs are long enough to be
    checked against the run's open steps, not one by one): each branch's output is stored, the
    join is queued exactly once, after the last branch, and the run's outputs are the join's."""
    assert len(json.dumps([f"b{n}" for n in range(300)])) > completion.LONG_NEEDS
    run_id = engine.submit(_fan(300))
    _run_workers(database, 2, lambda: engine.get_run(run_id).status == "succeeded")
    assert set_path.done >= 290  # the branches went the set-based way (the last one may not)
    run = engine.get_run(run_id)
    assert run.step("b123").output == {"n": 123}
    assert run.outputs == {"join": None}  # a noop without parameters outputs nothing
    seen = [e.message for e in engine.events(run_id, limit=5000) if e.type == "state"]
    assert seen.count("step join queued") == 1
    last_branch = max(seen.index(f"step b{n} succeeded") for n in range(300))
    assert seen.index("step join queued") > last_branch  # never readied while one was open


def test_a_batch_refuses_only_the_results_whose_lease_was_taken_over(
    engine: Engine, database: Database
) -> None:
    """Three claimed steps, one of them reaped and claimed again meanwhile (a new token):
    recording the three old claims together completes two (their runs end) and refuses the
    third, whose row (the newer attempt) is left as it was."""
    spec = {"name": "one", "steps": [{"id": "only", "kind": "noop"}]}
    ids = [engine.submit(spec) for _ in range(3)]
    clock = SystemClock()
    with database.write() as conn:
        old = queue_sql.claim(
            conn, owner="w1", queues=["default"], limit=3, now=clock.now(), lease_seconds=30
        )
    assert len(old) == 3
    taken = old[1]
    with database.write() as conn:  # the lease ran out, and another worker took the step
        conn.execute(
            update(Step)
            .where(Step.id == taken.id)
            .values(status="queued", lease_token=None, run_after=clock.now() - timedelta(1))
        )
        again = queue_sql.claim(
            conn, owner="w2", queues=["default"], limit=1, now=clock.now(), lease_seconds=30
        )
    assert [c.id for c in again] == [taken.id]
    batch = [
        completion.Success(c.id, c.run_id, c.lease_token, c.attempt, {"by": c.id}) for c in old
    ]
    with database.write() as conn, events.buffered_events(conn):
        recorded = completion.complete_many(conn, batch, now=clock.now())
    assert [s.step_id for s in recorded.refused] == [taken.id]
    assert sorted(s.step_id for s in recorded.done) == sorted([old[0].id, old[2].id])
    assert recorded.left == []
    with database.read() as conn:
        row = conn.execute(
            select(Step.status, Step.lease_token, Step.output).where(Step.id == taken.id)
        ).one()
    assert (row.status, row.lease_token, row.output) == ("running", again[0].lease_token, None)
    statuses = {i: engine.get_run(i).status for i in ids}
    assert statuses[taken.run_id] not in ("succeeded", "failed")  # its newer attempt runs
    assert sorted(s for i, s in statuses.items() if i != taken.run_id) == ["succeeded"] * 2


def test_a_result_the_database_cannot_store_fails_only_its_step_in_a_batch(
    engine: Engine, database: Database
) -> None:
    """Three successes recorded as one batch, one of them with an output JSON cannot hold (a
    set): that step is dead with the reason, the other two succeed with their outputs, and
    every run has ended."""
    spec = {"name": "one", "steps": [{"id": "only", "kind": "noop"}]}
    ids = [engine.submit(spec) for _ in range(3)]
    worker = Worker(database, WorkerOptions(concurrency=3))
    claimed = worker._claim(3)
    outputs = {claimed[0].id: "fine", claimed[1].id: {1, 2}, claimed[2].id: ["also", "fine"]}
    worker._record([(c, Outcome(output=outputs[c.id])) for c in claimed])
    by_step = {}
    for run_id in ids:
        run = engine.get_run(run_id)
        by_step[run.steps[0].id] = (run.status, run.steps[0].status, run.steps[0].output)
    assert by_step[claimed[0].id] == ("succeeded", "succeeded", "fine")
    assert by_step[claimed[2].id] == ("succeeded", "succeeded", ["also", "fine"])
    assert by_step[claimed[1].id][:2] == ("failed", "dead")
    bad = next(s for i in ids for s in engine.get_run(i).steps if s.id == claimed[1].id)
    assert "JSON" in (bad.error_message or ""), bad.error_message


def _claim_all(database: Database, limit: int, owner: str = "w1") -> list[queue_sql.ClaimedStep]:
    with database.write() as conn:
        return queue_sql.claim(
            conn,
            owner=owner,
            queues=["default"],
            limit=limit,
            now=SystemClock().now(),
            lease_seconds=30,
        )


def _claim_again(database: Database, step_id: str) -> queue_sql.ClaimedStep:
    """The step's lease ran out and another claim took it: a new token."""
    with database.write() as conn:
        conn.execute(
            update(Step)
            .where(Step.id == step_id)
            .values(status="queued", lease_token=None, run_after=SystemClock().now() - timedelta(1))
        )
    [again] = _claim_all(database, 1, owner="w2")
    assert again.id == step_id
    return again


def test_two_claims_of_one_step_in_a_batch_record_only_the_newer(
    engine: Engine, database: Database
) -> None:
    """A batch holding a stale claim's success and the newer claim's success of the same step,
    in either order: the newer one is recorded once (one 'succeeded' event, its output), the
    stale one refused."""
    spec = {"name": "one", "steps": [{"id": "only", "kind": "noop"}]}
    for stale_first in (True, False):
        run_id = engine.submit(spec)
        [old] = _claim_all(database, 1)
        again = _claim_again(database, old.id)
        stale = completion.Success(old.id, run_id, old.lease_token, old.attempt, "stale")
        newer = completion.Success(again.id, run_id, again.lease_token, again.attempt, "newer")
        batch = [stale, newer] if stale_first else [newer, stale]
        with database.write() as conn, events.buffered_events(conn):
            recorded = completion.complete_many(conn, batch, now=SystemClock().now())
        assert [s.token for s in recorded.done] == [again.lease_token]
        assert [s.token for s in recorded.refused] == [old.lease_token]
        run = engine.get_run(run_id)
        assert (run.status, run.steps[0].output) == ("succeeded", "newer")
        messages = [e.message for e in engine.events(run_id)]
        assert messages.count("step only succeeded") == 1


def test_a_stale_success_does_not_hide_the_newer_claims_failure(
    engine: Engine, database: Database
) -> None:
    """Recorded through the worker in one batch: a stale claim's success is refused and the
    newer claim's failure of the same step is recorded (the step waits for its retry, with the
    failure in its history)."""
    run_id = engine.submit({"name": "one", "steps": [{"id": "only", "kind": "noop"}]})
    [old] = _claim_all(database, 1)
    again = _claim_again(database, old.id)
    worker = Worker(database, WorkerOptions(concurrency=2))
    worker._record(
        [
            (old, Outcome(output="stale")),
            (again, Outcome(failure=Failure("exception:RuntimeError", "boom", True))),
        ]
    )
    step = engine.get_run(run_id).steps[0]
    assert step.status == "queued"  # back in the queue for its retry
    assert [e["attempt"] for e in step.errors] == [again.attempt]
    assert step.output is None


def test_the_batch_leaves_to_the_full_advance_only_what_needs_it(
    engine: Engine, database: Database
) -> None:
    """complete_many completes a lone step and ends its run; leaves untouched the step whose
    completion readies another and the one whose run declares outputs (the full advance does
    those); completes the running step of a cancelled run without ending that run again."""
    plain = engine.submit({"name": "plain", "steps": [{"id": "a", "kind": "noop"}]})
    chain = engine.submit(
        {"name": "chain", "steps": [{"id": "a", "kind": "noop"},
                                    {"id": "b", "kind": "noop", "needs": ["a"]}]}
    )  # fmt: skip
    declared = engine.submit(
        {"name": "declared", "outputs": {"x": "{{ steps.a.status }}"},
         "steps": [{"id": "a", "kind": "noop"}]}
    )  # fmt: skip
    cancelled = engine.submit({"name": "gone", "steps": [{"id": "a", "kind": "noop"}]})
    claimed = {c.run_id: c for c in _claim_all(database, 4)}
    assert set(claimed) == {plain, chain, declared, cancelled}
    engine.cancel(cancelled)
    batch = [
        completion.Success(c.id, c.run_id, c.lease_token, c.attempt, None) for c in claimed.values()
    ]
    with database.write() as conn, events.buffered_events(conn):
        recorded = completion.complete_many(conn, batch, now=SystemClock().now())
    assert sorted(s.run_id for s in recorded.done) == sorted([plain, cancelled])
    assert sorted(s.run_id for s in recorded.left) == sorted([chain, declared])
    assert recorded.refused == []
    assert engine.get_run(plain).status == "succeeded"
    assert engine.get_run(cancelled).status == "cancelled"
    for run_id in (chain, declared):  # left as they were, for the full path
        run = engine.get_run(run_id)
        assert (run.status, run.step("a").status) == ("queued", "running")
