"""``awe worker --autoscale MIN,MAX``: a worker grows its slots while work waits and gives them
back when idle, without losing a lease; the workers row (the UI's workers page) and the slot
gauge follow the current number."""

from __future__ import annotations

import subprocess
import sys
import threading

from sqlalchemy import select

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


def test_autoscale_bounds_are_checked_before_anything_starts() -> None:
    """``--autoscale`` takes MIN,MAX with 1 <= MIN <= MAX; anything else is refused with what
    to give instead, before the worker touches a database (exit 2)."""
    for given in ("3", "5,2", "0,4", "a,b", "1,2,3"):
        done = subprocess.run(
            [sys.executable, "-m", "awe", "worker", "--autoscale", given],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (given, done.stdout, done.stderr)
        assert "MIN,MAX" in done.stderr, done.stderr
