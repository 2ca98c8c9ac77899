"""Claim, heartbeat, completion, failure, reaping, step logs and cancellation take rows in one
order (runs by id, then their steps), so running them all at once on PostgreSQL never makes the
server break a deadlock: the database's own deadlock counter stays where it was and its log
names none."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from awe.core.clock import SystemClock
from awe.core.errors import Conflict
from awe.engine import transitions
from awe.engine.client import Engine
from awe.engine.worker import Worker, WorkerOptions
from awe.services import workflows
from awe.storage import queue as queue_sql
from awe.storage.database import Database, create_database, is_outage
from tests.conftest import PostgresServer, make_settings
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres
RUNS = int(os.environ.get("LOCK_ORDER_RUNS", "60"))

WIDE = {
    "name": "contended",
    "steps": [
        {"id": "start", "kind": "python", "with": {"function": "tests.support.kinds:chatty",
                                                   "kwargs": {"lines": 20}}},
        *(
            {"id": f"branch{n}", "kind": "python", "needs": ["start"],
             "with": {"function": "tests.support.kinds:track",
                      "kwargs": {"group": "lock-order", "seconds": 0.02}},
             **({"retry": {"max_attempts": 3, "backoff": [0]}} if n == 0 else {})}
            for n in range(6)
        ),
        {"id": "flaky", "kind": "python", "needs": ["start"],
         "with": {"function": "tests.support.kinds:boom"},
         "retry": {"max_attempts": 2, "backoff": [0]}, "on_failure": "continue"},
        {"id": "sub", "kind": "workflow", "needs": ["start"],
         "with": {"workflow": "lock-child", "inputs": {}}},
        {"id": "join", "kind": "noop", "needs": [f"branch{n}" for n in range(6)]},
    ],
}  # fmt: skip
# A child run per parent: finishing and cancelling one locks the parent's rows too.
CHILD = """\
name: lock-child
steps:
  - {id: a, kind: python, with: {function: "tests.support.kinds:chatty", kwargs: {lines: 5}}}
  - {id: b, kind: noop, needs: [a]}
"""


@pytest.fixture
def contended(pg_server: PostgresServer, pg_template: str, tmp_path: Path) -> Iterator[Database]:
    """A fresh migrated database."""
    name = f"awe_locks_{os.getpid()}"
    url = pg_server.create_database(name, template=pg_template)
    db = create_database(make_settings(tmp_path, database_url=url))
    yield db
    db.dispose()
    pg_server.drop_database(name)


def deadlocks(db: Database) -> int:
    """How many deadlocks the server has broken in this database so far."""
    with db.read() as conn:
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    with db.read() as conn:
        return int(
            conn.execute(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


def test_everything_at_once_never_deadlocks(
    contended: Database, pg_server: PostgresServer, tmp_path: Path
) -> None:
    """Three workers (short leases: they heartbeat and reap all the time, their steps log), a
    claimer that takes steps and dies without a word (its leases are reaped), and a canceller
    that cancels runs mid-flight, all on 60 wide runs with a child run each: every run ends,
    and PostgreSQL reports no deadlock, in its statistics or in its log."""
    db = contended
    engine = Engine(db)
    child = tmp_path / "lock-child.yaml"
    child.write_text(CHILD, encoding="utf-8")
    workflows.push(db, child)
    before = deadlocks(db)
    log_path = getattr(getattr(pg_server, "handle", None), "log", None)
    log_start = Path(log_path).stat().st_size if log_path and Path(log_path).exists() else None
    ids = [engine.submit(WIDE, {}) for _ in range(RUNS)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(action: object) -> None:
        try:
            action()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def cancel_some() -> None:
        rng = random.Random(7)  # noqa: S311 - which runs to cancel, not a secret
        for run_id in rng.sample(ids, 15):
            time.sleep(rng.uniform(0.0, 0.05))
            with contextlib.suppress(Conflict):  # the run ended before its turn came
                engine.cancel(run_id)

    def claim_and_vanish() -> None:
        clock = SystemClock()
        while not stop.is_set():
            with db.write() as conn:
                queue_sql.claim(
                    conn,
                    owner="vanished",
                    queues=["default"],
                    limit=2,
                    now=clock.now(),
                    lease_seconds=0.5,
                )
            stop.wait(0.3)

    options = WorkerOptions(concurrency=4, lease_seconds=1.0, poll_seconds=0.01)
    workers = [Worker(db, options, settings=db.settings) for _ in range(3)]
    threads = [threading.Thread(target=guarded, args=(w.run,)) for w in workers]
    threads += [
        threading.Thread(target=guarded, args=(cancel_some,)),
        threading.Thread(target=guarded, args=(claim_and_vanish,)),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: all(engine.get_run(i).status in ("succeeded", "failed", "cancelled")
                        for i in ids),
            timeout=240,
            what="every run to end",
        )  # fmt: skip
    finally:
        stop.set()
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    statuses = {engine.get_run(i).status for i in ids}
    assert "cancelled" in statuses
    assert "succeeded" in statuses
    db.dispose()  # the backends exit, and report their statistics as they go
    said = ""
    if log_start is not None:
        with open(log_path, encoding="utf-8", errors="replace") as log:  # type: ignore[arg-type]
            log.seek(log_start)
            said = log.read()
    # On failure, the server's account of the deadlock: which statements waited on which.
    detail = said[max(0, said.find("deadlock detected") - 60) :][:6000]
    assert "deadlock detected" not in said, detail
    assert deadlocks(db) == before, detail


def parent_and_child(db: Database, tmp_path: Path) -> tuple[str, str]:
    """A run whose first step started a child run: (parent id, child id)."""
    child = tmp_path / "lock-child.yaml"
    child.write_text(CHILD, encoding="utf-8")
    workflows.push(db, child)
    engine = Engine(db)
    parent = engine.submit(
        {"name": "p", "steps": [{"id": "sub", "kind": "workflow",
                                 "with": {"workflow": "lock-child", "inputs": {}}}]},
        {},
    )  # fmt: skip
    return parent, engine.child_runs(parent)["sub"].id


def test_a_child_is_skipped_whole_while_its_parent_is_held(
    contended: Database, tmp_path: Path
) -> None:
    """lock_family with skip_locked on a child run whose parent another transaction holds
    answers False and keeps nothing locked (a third transaction takes the child at once);
    once the parent is free, it locks both."""
    parent, child = parent_and_child(contended, tmp_path)
    nowait = text("SELECT id FROM runs WHERE id = :id FOR UPDATE NOWAIT")
    with contended.write() as holder:
        assert transitions.lock_run(holder, parent) is not None
        with contended.write() as other:
            assert transitions.lock_family(other, [child], skip_locked=True) is False
            with contended.write() as third:
                assert third.execute(nowait, {"id": child}).scalar() == child
    with contended.write() as other:
        assert transitions.lock_family(other, [child], skip_locked=True) is True
        with contended.write() as third, pytest.raises(OperationalError) as held:
            third.execute(nowait, {"id": parent})
        assert is_outage(held.value)


def test_locking_a_held_run_without_waiting_is_a_transient_error(
    contended: Database, tmp_path: Path
) -> None:
    """lock_run(nowait=True) on a run another transaction holds raises at once, with an error
    the callers retry as transient (what resuming a child under its parent relies on)."""
    _, child = parent_and_child(contended, tmp_path)
    with contended.write() as holder:
        holder.execute(text("SELECT id FROM runs WHERE id = :id FOR UPDATE"), {"id": child})
        with contended.write() as other, pytest.raises(OperationalError) as refused:
            transitions.lock_run(other, child, nowait=True)
    assert is_outage(refused.value)
