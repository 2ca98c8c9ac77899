"""Functions test workflows call through the built-in ``python`` kind."""

from __future__ import annotations

import threading
import time
from typing import Any

_lock = threading.Lock()
_running: dict[str, int] = {}
peak: dict[str, int] = {}


def track(group: str, seconds: float = 0.05) -> dict[str, Any]:
    """Count how many calls of ``group`` run at once; remember the highest count."""
    with _lock:
        _running[group] = _running.get(group, 0) + 1
        peak[group] = max(peak.get(group, 0), _running[group])
    try:
        time.sleep(seconds)
    finally:
        with _lock:
            _running[group] -= 1
    return {"group": group}


def not_json() -> set[int]:
    """Return something JSON cannot hold."""
    return {1, 2}


def boom(message: str = "boom") -> None:
    """Raise a plain exception (a retryable failure)."""
    raise RuntimeError(message)


def late_boom(seconds: float) -> None:
    """Sleep, then raise a plain exception (a retryable failure that takes a while)."""
    time.sleep(seconds)
    raise RuntimeError("late boom")


def track_item(group: str, item: object, seconds: float = 0.05) -> object:
    """Like track, for one item of a fan-out; returns the item."""
    track(group, seconds)
    return item


class Opaque:
    """An object JSON cannot hold, for log data."""


def log_oddities(ctx: Any) -> str:
    """Log data that is not JSON (an object, bytes, a set) and a NUL character; return one too."""
    ctx.log("odd data", thing=Opaque(), raw=b"\x00\x01", numbers={1, 2})
    ctx.log("a NUL \x00 in a log line")
    return "a NUL \x00 in an output"


def long_category() -> None:
    """Fail with a category longer than the database's column for it (PostgreSQL refuses it)."""
    from awe.engine.errors import StepError

    raise StepError("a category the database will not take", category="x" * 300, retryable=False)


def chatty(ctx: Any, lines: int = 300) -> int:
    """Log many lines as fast as possible, then finish."""
    for n in range(lines):
        ctx.log(f"line {n}")
    return lines


def lone_surrogate(where: str = "message") -> None:
    """Fail with a lone surrogate (half a character, which no database encoding can store) in
    the message or in the category."""
    from awe.engine.errors import StepError

    half = "half a character: \ud800"
    if where == "category":
        raise StepError("a category no database can take", category=half, retryable=False)
    raise StepError(half, category="odd", retryable=False)
