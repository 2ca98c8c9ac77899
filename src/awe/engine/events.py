"""Run events: append-only rows of state changes, logs and progress, and worker wake-ups.

Every state change of a run or step writes an event in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from awe.engine import states
from awe.engine.wakeup import CHANNEL
from awe.storage.engine_models import RunEvent

EVENT_BUFFER = "awe_event_buffer"


def add_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Append events (dicts with run_id, type, message and optional step_key, level, data).

    Inside :func:`buffered_events` they are held and written in one statement at its end.
    """
    buffer = conn.info.get(EVENT_BUFFER)
    if buffer is not None:
        buffer.extend(events)
    elif events:
        conn.execute(
            insert(RunEvent),
            [{"level": "info", "step_key": None, "data": None, **e} for e in events],
        )


@contextmanager
def buffered_events(conn: Connection) -> Iterator[None]:
    """Collect the events added inside, and insert them all at once when the block ends."""
    conn.info[EVENT_BUFFER] = []
    try:
        yield
        events = conn.info[EVENT_BUFFER]
    finally:
        del conn.info[EVENT_BUFFER]
    add_events(conn, events)


def state_event(
    run_id: str, step_key: str | None, status: str, now: datetime, **data: Any
) -> dict[str, Any]:
    """The event row of a run's or step's change to ``status``."""
    what = f"step {step_key}" if step_key else "run"
    return {
        "run_id": run_id,
        "step_key": step_key,
        "type": "state",
        "message": f"{what} {status}",
        "data": {"status": status, **data},
        "created_at": now,
        "level": "error" if status in (states.DEAD, states.RUN_FAILED) else "info",
    }


def notify(conn: Connection, queue_names: set[str]) -> None:
    """Wake idle workers (PostgreSQL LISTEN/NOTIFY; delivered when the transaction commits)."""
    if conn.dialect.name != "postgresql":
        return
    for name in sorted(queue_names):
        conn.exec_driver_sql(
            "SELECT pg_notify(%(channel)s, %(queue)s)", {"channel": CHANNEL, "queue": name}
        )
