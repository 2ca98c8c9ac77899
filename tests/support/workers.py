"""A real worker on a thread, for tests that need one live and heartbeating."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from awe.core.config import Settings
from awe.engine.client import Engine
from awe.engine.worker import Worker, WorkerOptions
from awe.storage.database import Database
from tests.support.wait import wait_until


@contextmanager
def live_worker(
    database: Database,
    queues: list[str],
    *,
    concurrency: int = 1,
    settings: Settings | None = None,
) -> Iterator[None]:
    """A worker serving ``queues`` until the block ends (with the database's settings unless
    ``settings`` are given)."""
    worker = Worker(
        database,
        WorkerOptions(queues=queues, concurrency=concurrency),
        settings=settings or database.settings,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait_until(
        lambda: any(w.status == "running" for w in Engine(database).list_workers()),
        what="the worker to register",
    )
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=30)
