"""Engine fixtures: an Engine on the test's database, and a worker that drains it in-process."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from awe.core.config import Settings
from awe.engine.worker import Worker, WorkerOptions
from awe.storage.database import Database
from tests.support.clock import ManualClock

Drain = Callable[..., int]


@pytest.fixture
def drain(database: Database, settings: Settings) -> Drain:
    """drain(clock=None, settings=None, **options): run a worker until nothing is ready.

    Returns the number of steps run; ``settings`` replaces the test's default settings.
    """

    def run(
        clock: ManualClock | None = None, settings: Settings | None = None, **options: object
    ) -> int:
        opts = WorkerOptions(**{"concurrency": 4, "poll_seconds": 0.01, **options})  # type: ignore[arg-type]
        return Worker(database, opts, clock=clock, settings=settings or default).drain()

    default = settings
    return run
