"""A run's timeline (Gantt): one row per step, a bar per attempt, retry waits between them,
from the run's state events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from awe.engine.records import EventRecord, StepRecord

LABEL_WIDTH = 170
CHART_WIDTH = 760
ROW_HEIGHT = 24
#: What ends an attempt (a step's "running" starts one).
_ENDS = frozenset({"succeeded", "failed", "dead", "cancelled", "retrying", "skipped"})


@dataclass(frozen=True)
class Bar:
    """One span on a row: an attempt (``kind`` its outcome, "try" for a failed one that was
    retried) or a retry wait ("wait")."""

    x: float
    width: float
    kind: str
    label: str


@dataclass(frozen=True)
class Row:
    """One step's row."""

    key: str
    y: int
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Timeline:
    """The chart: rows, its size, and what its axis spans in seconds."""

    rows: tuple[Row, ...]
    width: int
    height: int
    seconds: float


def _at(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timeline(
    steps: Sequence[StepRecord], events: Sequence[EventRecord], now: datetime | None = None
) -> Timeline:
    """Lay out the attempts of ``steps`` from their state ``events`` (in order)."""
    spans: dict[str, list[tuple[datetime, datetime | None, str]]] = {}
    waits: dict[str, list[tuple[datetime, datetime | None]]] = {}
    started: dict[str, datetime] = {}
    for event in events:
        if event.type != "state" or not event.step_key or not event.data:
            continue
        key, status, at = event.step_key, str(event.data.get("status")), _at(event.created_at)
        if status == "running":
            started[key] = at
            if waits.get(key) and waits[key][-1][1] is None:
                waits[key][-1] = (waits[key][-1][0], at)
        elif status in _ENDS and key in started:
            kind = "try" if status == "retrying" else status
            spans.setdefault(key, []).append((started.pop(key), at, kind))
            if status == "retrying":
                waits.setdefault(key, []).append((at, None))
    for key, at in started.items():  # still running
        spans.setdefault(key, []).append((at, None, "running"))
    moments = [s for rows in spans.values() for s, _, _ in rows]
    if not moments:
        return Timeline((), LABEL_WIDTH + CHART_WIDTH, 0, 0.0)
    end = now or datetime.now(UTC)
    finished = [e for rows in spans.values() for _, e, _ in rows if e is not None]
    if all(e is not None for rows in spans.values() for _, e, _ in rows) and finished:
        end = max(finished)
    first = min(moments)
    total = max((end - first).total_seconds(), 0.001)
    scale = CHART_WIDTH / total

    def place(start: datetime, stop: datetime | None) -> tuple[float, float]:
        x = LABEL_WIDTH + (start - first).total_seconds() * scale
        width = ((stop or end) - start).total_seconds() * scale
        return round(x, 1), round(max(width, 2.0), 1)

    rows = []
    for index, step in enumerate(s for s in steps if s.step_key in spans):
        bars = []
        for start, stop, kind in spans[step.step_key]:
            x, width = place(start, stop)
            seconds = ((stop or end) - start).total_seconds()
            bars.append(Bar(x, width, kind, f"{step.step_key}: {kind}, {seconds:.2f} s"))
        for start, wait_stop in waits.get(step.step_key, []):
            x, width = place(start, wait_stop)
            bars.append(Bar(x, width, "wait", f"{step.step_key}: waiting to retry"))
        rows.append(Row(step.step_key, index * ROW_HEIGHT, tuple(bars)))
    return Timeline(tuple(rows), LABEL_WIDTH + CHART_WIDTH, len(rows) * ROW_HEIGHT + 20, total)
