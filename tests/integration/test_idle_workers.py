"""Idle workers: with a LISTEN connection they back off to a look every MAX_IDLE_WAIT seconds and
still start new work at once (the notification wakes them); without one (SQLite) they keep
polling at the short interval, since nothing else tells them of other processes' work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from awe.core.config import Settings
from awe.engine import worker as worker_module
from awe.engine.client import Engine
from awe.engine.worker import MAX_IDLE_WAIT, Worker, WorkerOptions
from awe.storage.database import Database, create_database

NOOP = {"name": "idle-noop", "steps": [{"id": "a", "kind": "noop"}]}


@contextmanager
def running_worker(database: Database) -> Iterator[Worker]:
    """A worker in a thread of this process (poll interval 10 ms), stopped at the end."""
    worker = Worker(database, WorkerOptions(concurrency=2, poll_seconds=0.01))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)


def statements_during(database: Database, seconds: float) -> int:
    """How many SQL statements this process sends in ``seconds``."""
    count = 0

    def counted(*_: object) -> None:
        nonlocal count
        count += 1

    event.listen(database.engine, "before_cursor_execute", counted)
    try:
        time.sleep(seconds)
    finally:
        event.remove(database.engine, "before_cursor_execute", counted)
    return count


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # fmt: skip
def test_a_listening_worker_backs_off_and_still_starts_work_at_once(
    database: Database, db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, once listening and idle, a worker looks at its queues a few times a second
    at most (its statements in 2 s, heartbeats included, stay under 40, where a 10 ms poll
    would send about 200). Then, with its wait let grow to 4 s, a run submitted from another
    connection pool (no in-process signal reaches the worker) still starts within 0.4 s: only
    the notification can have woken it."""
    with running_worker(database) as worker:
        _wait_for(lambda: worker._listener is not None and worker._listener.listening.is_set())
        time.sleep(2 * MAX_IDLE_WAIT + 0.5)  # let the wait grow to its bound
        assert statements_during(database, 2.0) < 40
        monkeypatch.setattr(worker_module, "MAX_IDLE_WAIT", 30.0)
        time.sleep(4.0)  # waits of 0.5, 1 and 2 s: the one under way now is 4 s long
        other = create_database(settings, url=db_url)
        try:
            engine = Engine(other)
            run_id = engine.submit(NOOP)
            _wait_for(lambda: engine.get_run(run_id).status == "succeeded")
            run = engine.get_run(run_id)
        finally:
            other.dispose()
        started = next(s.started_at for s in run.steps)
        assert started is not None
        assert (started - run.created_at).total_seconds() < 0.4


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_worker_without_listen_keeps_polling(database: Database) -> None:
    """On SQLite there is no LISTEN: an idle worker keeps its 10 ms poll (well over 40
    statements in 2 s), so work another process submits is found within that interval."""
    engine = Engine(database)
    with running_worker(database) as worker:
        _wait_for(lambda: any(w.status == "running" for w in engine.list_workers()))
        time.sleep(0.5)
        assert worker._listener is None
        assert statements_during(database, 2.0) > 40
