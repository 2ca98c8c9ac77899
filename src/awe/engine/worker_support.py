"""What a worker needs besides its loop: riding out a database outage, counting claimed steps'
queue wait, and the failure of a result the database would not take."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import DataError

from awe.core import metrics
from awe.core.logging import get_logger
from awe.engine.errors import Failure
from awe.storage import privacy
from awe.storage import queue as queue_sql
from awe.storage.database import is_outage

log = get_logger("worker")
T = TypeVar("T")


def count_waits(claimed: list[queue_sql.ClaimedStep], now: datetime) -> None:
    """Observe how long each claimed step waited from ready to started."""
    for step in claimed:
        if step.ready_at is not None:
            waited = max(0.0, (now - step.ready_at).total_seconds())
            metrics.QUEUE_WAIT.labels(step.queue, step.kind).observe(waited)


def unrecordable(exc: Exception) -> Failure:
    """The failure of a step whose result the database would not take (its message scrubbed
    in privacy mode: the database may quote the value)."""
    if isinstance(exc, DataError):
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        message = f"the database refused this step's result: {reason[:300]}"
        return Failure("validation", str(privacy.readable(message)), False)
    reason = str(exc).splitlines()[0][:300] if str(exc) else ""
    message = f"awe could not record this step's result: {type(exc).__name__}: {reason}"
    return Failure("internal", str(privacy.readable(message)), False)


def short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(getattr(exc, "orig", None) or exc)
    return str(text).splitlines()[0][:300] if text else type(exc).__name__


def retrying(
    action: Callable[[], T],
    what: str,
    stopping: threading.Event,
    *,
    attempts: int = 0,
    forever: bool = False,
) -> T | None:
    """Run ``action``, retrying with backoff while the database is out (attempts 0: no cap;
    a stopping worker gives up after three, unless ``forever``).

    Only outages are retried; any other error is raised at once (see storage.is_outage).
    """
    delay = 0.2
    tried = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_outage(exc):
                raise
            tried += 1
            if attempts and tried >= attempts:
                log.warning(f"database unavailable during {what}", error=short(exc))
                return None
            if stopping.is_set() and not forever and tried >= 3:
                return None
            log.warning(
                f"database unavailable during {what}; retrying in {delay:.1f} s",
                error=short(exc),
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
