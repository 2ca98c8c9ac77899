"""Run events: append-only rows of state changes, logs and progress, and worker wake-ups.

Every state change of a run or step writes an event in the same transaction as the change.
Each event gets the next number of its run (``seq``), taken with an update of the run's row: on
PostgreSQL that row stays locked until the transaction commits, so a run's events commit in
``seq`` order and a reader that follows ``seq`` never skips one that commits late (plain ids
can commit out of order). SQLite commits one writer at a time, so the order holds there too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, select, update

from awe.core.logging import get_logger
from awe.engine import states
from awe.engine.wakeup import CHANNEL
from awe.storage.database import is_outage
from awe.storage.engine_models import Run, RunEvent

log = get_logger("events")
EVENT_BUFFER = "awe_event_buffer"
#: Longest event message kept; a longer one is cut with a note of how much was dropped.
MAX_MESSAGE = 64 * 1024
#: Largest event data kept, as JSON; larger data is replaced by a note.
MAX_DATA = 256 * 1024


def add_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Append events (dicts with run_id, type, message and optional step_key, level, data).

    Inside :func:`buffered_events` they are held and written in one statement at its end.
    """
    buffer = conn.info.get(EVENT_BUFFER)
    if buffer is not None:
        buffer.extend(events)
    elif events:
        insert_events(conn, events)


def insert_events(
    conn: Connection,
    events: list[dict[str, Any]],
    *,
    locked: bool = False,
    run_values: dict[str, Any] | None = None,
) -> None:
    """Number the events in their runs and insert them (one update and one insert).

    ``locked``: this transaction already holds the runs' rows (taken in id order).
    ``run_values``: more columns the numbering update sets on the runs (one statement for both).
    """
    counts: dict[str, int] = {}
    for event in events:
        counts[event["run_id"]] = counts.get(event["run_id"], 0) + 1
    runs = sorted(counts)
    if len(runs) > 1 and conn.dialect.name == "postgresql" and not locked:
        # Lock order: runs by id, as everywhere (an UPDATE … IN locks them in scan order).
        conn.execute(
            select(Run.id).where(Run.id.in_(runs)).order_by(Run.id).with_for_update(key_share=True)
        )
    bumped = conn.execute(
        update(Run)
        .where(Run.id.in_(runs))
        .values(event_seq=Run.event_seq + case(counts, value=Run.id, else_=0), **(run_values or {}))
        .returning(Run.id, Run.event_seq)
    ).all()
    # Each run's new events take the numbers just below its new last number, in order.
    next_seq = {row.id: row.event_seq - counts[row.id] + 1 for row in bumped}
    rows = []
    for event in events:
        run_id = event["run_id"]
        if run_id not in next_seq:
            continue  # the run was deleted meanwhile: its events go with it
        rows.append(
            {"level": "info", "step_key": None, "data": None, **event, "seq": next_seq[run_id]}
        )
        next_seq[run_id] += 1
    if rows:
        conn.execute(insert(RunEvent), rows)


def insert_tolerant(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Insert events; if the database refuses the batch, insert them one by one and drop (and
    log) only those it refuses, so one bad event never costs the others or their results."""
    if not events:
        return
    try:
        with conn.begin_nested():
            insert_events(conn, events)
        return
    except Exception as exc:
        if is_outage(exc):
            raise
    for event in events:
        try:
            with conn.begin_nested():
                insert_events(conn, [event])
        except Exception as exc:
            if is_outage(exc):
                raise
            log.warning(
                "event dropped: the database refused it",
                run_id=event.get("run_id"),
                type=event.get("type"),
                error=str(exc).splitlines()[0][:200],
            )


@contextmanager
def buffered_events(conn: Connection) -> Iterator[None]:
    """Collect the events added inside, and insert them all at once when the block ends.

    Inside another such block (a child run created while its parent's are), the outer one
    holds them and writes them at its end.
    """
    if EVENT_BUFFER in conn.info:
        yield
        return
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


def json_safe(data: Any) -> Any:
    """``data`` as JSON can store it: what JSON cannot hold becomes text; huge data a note.

    Steps log whatever they like (datetimes, bytes, objects); none of it may fail a write.
    """
    try:
        text = json.dumps(data, default=str, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(repr(data)[:MAX_MESSAGE])
    if len(text) > MAX_DATA:
        return {"truncated": True, "size": len(text)}
    return json.loads(text)


def short_message(message: Any) -> str:
    """An event message as text of at most MAX_MESSAGE characters."""
    text = message if isinstance(message, str) else str(message)
    if len(text) > MAX_MESSAGE:
        return text[:MAX_MESSAGE] + f"… ({len(text) - MAX_MESSAGE} more characters)"
    return text


_NOTIFIED = "awe_notified_queues"


def notify(conn: Connection, queue_names: set[str]) -> None:
    """Wake idle workers (PostgreSQL LISTEN/NOTIFY; delivered when the transaction commits).

    A queue is notified once per transaction: PostgreSQL folds repeated notifications of one
    transaction (same channel, same payload) into one anyway, and a batch (a thousand runs
    submitted at once) would otherwise pay a round trip per run for it.
    """
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    entry = conn.info.get(_NOTIFIED)
    if entry is None or entry[0] is not transaction:
        entry = (transaction, set())
        conn.info[_NOTIFIED] = entry
    # Inside a savepoint nothing is recorded: if it rolls back, so do its notifications.
    done: set[str] = entry[1] if not conn.in_nested_transaction() else set()
    for name in sorted(set(queue_names) - done):
        done.add(name)
        conn.exec_driver_sql(
            "SELECT pg_notify(%(channel)s, %(queue)s)", {"channel": CHANNEL, "queue": name}
        )
