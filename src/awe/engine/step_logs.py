"""What running steps log, held by their worker until it is written.

Lines are made storable as they are logged, on the step's own thread: JSON-safe, bounded,
secrets masked (before cutting, so a value straddling the cut leaves nothing of itself) and, in
privacy mode, scrubbed; no write transaction ever waits on any of that. The worker writes them
every quarter of a second, and a step's last ones with its result, in order: a flush in progress
finishes before a result takes its step's lines, so a step's logs always commit before its final
state. While the database is out, a worker holds at most MAX_HELD lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from awe.core.clock import Clock
from awe.engine import events
from awe.engine.secret_refs import Masker
from awe.storage import privacy
from awe.storage.database import Database

LEVELS = frozenset({"debug", "info", "warning", "error"})
#: Lines a worker holds at most: while the database is out, what its steps log past this is
#: dropped (and counted, in a note that comes with the step's result), not kept in memory.
MAX_HELD = 50_000
Emit = Callable[[str, str, str, dict[str, Any] | None], None]


class StepLogs:
    """The lines logged by a worker's steps, not yet written."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._lines: list[dict[str, Any]] = []
        # Per claim, the lines it logged while the buffer was full (a note about them).
        self._dropped: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    def emitter(
        self, *, token: str, run_id: str, step_key: str, masker: Callable[[], Masker]
    ) -> Emit:
        """The ``emit`` of one claim's context (``masker`` gives its current masker)."""

        def emit(kind: str, level: str, message: str, data: dict[str, Any] | None) -> None:
            mask = masker()
            text = events.short_message(mask.text(str(message)))
            safe = None if data is None else mask.value(events.json_safe(data))
            line = {
                "_token": token,
                "run_id": run_id,
                "step_key": step_key,
                "type": kind,
                "level": level if level in LEVELS else "info",
                "message": privacy.readable(text),
                "data": privacy.readable(safe),
                "created_at": self.clock.now(),
            }
            with self._lock:
                if len(self._lines) < MAX_HELD:
                    self._lines.append(line)
                    return
                noted = self._dropped.setdefault(token, {**line, "message": "", "data": None})
                noted["data"] = {"dropped": ((noted["data"] or {}).get("dropped", 0)) + 1}

        return emit

    def take(self, tokens: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The lines of these claims, removed from the buffer (after any flush in progress)."""
        wanted = set(tokens)
        with self._flushing, self._lock:
            mine = [e for e in self._lines if e["_token"] in wanted]
            if mine:
                self._lines = [e for e in self._lines if e["_token"] not in wanted]
            mine += [_dropped_note(self._dropped.pop(t)) for t in tokens if t in self._dropped]
        found: dict[str, list[dict[str, Any]]] = {token: [] for token in tokens}
        for line in mine:
            found[line["_token"]].append(_public(line))
        return found

    def flush(self) -> None:
        """Write every line held (kept for the next flush if the database is out)."""
        with self._flushing:
            with self._lock:
                batch, self._lines = self._lines, []
            if not batch:
                return
            try:
                with self.db.write() as conn:
                    events.insert_tolerant(conn, [_public(e) for e in batch])
            except BaseException:
                with self._lock:
                    self._lines[:0] = batch
                raise


def _dropped_note(noted: dict[str, Any]) -> dict[str, Any]:
    count = noted["data"]["dropped"]
    return {
        **noted,
        "level": "warning",
        "message": f"{count:,} log lines were dropped: the worker could not write them in time"
        f" (the database was out) and holds at most {MAX_HELD:,}",
    }


def _public(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if not k.startswith("_")}
