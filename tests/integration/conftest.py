"""Engine fixtures: an Engine on the test's database, and a worker that drains it in-process."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from awe.engine.worker import Worker, WorkerOptions
from awe.storage.database import Database
from tests.support.clock import ManualClock

Drain = Callable[..., int]


@pytest.fixture
def drain(database: Database) -> Drain:
    """drain(clock=None, **options): run a worker until nothing is ready; returns steps run."""

    def run(clock: ManualClock | None = None, **options: object) -> int:
        opts = WorkerOptions(**{"concurrency": 4, "poll_seconds": 0.01, **options})  # type: ignore[arg-type]
        return Worker(database, opts, clock=clock).drain()

    return run
