"""``awe worker --autoscale MIN,MAX``: a worker grows its slots while work waits and gives them
back when idle, without losing a lease; the workers row (the UI's workers page) and the slot
gauge follow the current number."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import typer
from sqlalchemy import select

from awe.cli import worker_cmd
from awe.core import metrics
from awe.engine.client import Engine
from awe.engine.worker import Worker, WorkerOptions
from awe.storage.database import Database
from awe.storage.engine_models import Worker as WorkerRow
from tests.support import kinds
from tests.support.wait import wait_until


def _slots_in_row(database: Database, worker_id: str) -> int:
    with database.read() as conn:
        return int(
            conn.execute(
                select(WorkerRow.concurrency).where(WorkerRow.id == worker_id)
            ).scalar_one()
        )


def test_a_worker_grows_with_waiting_work_and_shrinks_when_idle(
    engine: Engine, database: Database
) -> None:
    """24 steps of 0.3 s wait for a worker autoscaled 1..6: more than one runs at once and
    never more than 6; every step succeeds on its first attempt (shrinking took no lease);
    once idle the worker is back to 1 slot, and its row and the free-slot gauge say so."""
    group = f"autoscale-{database.dialect}"
    kinds.peak.pop(group, None)
    spec = {
        "name": "scaled",
        "steps": [
            {
                "id": "work",
                "kind": "python",
                "with": {"function": "tests.support.kinds:track",
                         "kwargs": {"group": group, "seconds": 0.3}},
            }
        ],
    }  # fmt: skip
    free_before = metrics.WORKER_SLOTS.labels("free")._value.get()
    ids = [engine.submit(spec) for _ in range(24)]
    options = WorkerOptions(
        autoscale=(1, 6), scale_down_seconds=0.3, lease_seconds=2.0, poll_seconds=0.01
    )
    worker = Worker(database, options)
    thread = threading.Thread(target=worker.run, daemon=True)
    sampled: list[int] = []
    sampling = threading.Event()

    def sample() -> None:  # the slots, every 10 ms, while the worker runs
        while not sampling.wait(0.01):
            sampled.append(worker._slots)

    threading.Thread(target=sample, daemon=True).start()
    thread.start()
    try:
        wait_until(
            lambda: all(engine.get_run(i).status == "succeeded" for i in ids),
            timeout=60,
            what="every run",
        )
        assert 1 < kinds.peak[group] <= 6
        wait_until(lambda: worker._slots == 1, timeout=20, what="the worker to shrink to 1")
        wait_until(lambda: _slots_in_row(database, worker.id) == 1, timeout=10, what="its row")
        assert metrics.WORKER_SLOTS.labels("free")._value.get() == free_before + 1
    finally:
        worker.stop()
        thread.join(30)
    for run_id in ids:
        step = engine.get_run(run_id).steps[0]
        assert (step.status, step.attempt, step.errors) == ("succeeded", 1, [])


def test_a_full_worker_grows_when_more_work_waits(engine: Engine, database: Database) -> None:
    """A worker autoscaled 1..4 holding one long step in its only slot: work submitted then
    makes it grow (it looks for waiting work while full), so the short runs all end before
    the long step does."""
    group = f"autoscale-full-{database.dialect}"
    long_run = engine.submit({"name": "long", "steps": [{"id": "wait", "kind": "sleep",
                                                         "with": {"seconds": 3}}]})  # fmt: skip
    worker = Worker(
        database,
        WorkerOptions(autoscale=(1, 4), scale_down_seconds=30, lease_seconds=5.0),
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: engine.get_run(long_run).steps[0].status == "running", what="start")
        assert worker._slots == 1
        short = {
            "name": "short",
            "steps": [{"id": "s", "kind": "python",
                       "with": {"function": "tests.support.kinds:track",
                                "kwargs": {"group": group, "seconds": 0.1}}}],
        }  # fmt: skip
        ids = [engine.submit(short) for _ in range(6)]
        wait_until(
            lambda: all(engine.get_run(i).status == "succeeded" for i in [*ids, long_run]),
            timeout=60,
            what="every run",
        )
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    ended = max(engine.get_run(i).finished_at for i in ids)  # type: ignore[type-var]
    assert ended < engine.get_run(long_run).finished_at  # type: ignore[operator]
    assert 1 < worker._slots <= 4


def test_autoscale_bounds_are_checked_before_anything_starts() -> None:
    """``--autoscale`` takes MIN,MAX with 1 <= MIN <= MAX, and not with ``--concurrency``;
    anything else is refused with what to give instead (exit 2), before the worker touches a
    database; WorkerOptions refuses such bounds too."""
    for bad in ("3", "5,2", "0,4", "a,b", "1,2,3"):
        with pytest.raises(typer.BadParameter, match="MIN,MAX"):
            worker_cmd._bounds(bad)
    assert worker_cmd._bounds("2,16") == (2, 16)
    with pytest.raises(ValueError, match="MIN <= MAX"):
        WorkerOptions(autoscale=(5, 2))
    for args in (["--autoscale", "5,2"], ["--concurrency", "3", "--autoscale", "1,2"]):
        done = subprocess.run(
            [sys.executable, "-m", "awe", "worker", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "--autoscale" in done.stderr, done.stderr
