"""Creating runs: their rows, their steps, and the first pass that readies the roots.

One run or a thousand cost about the same statements: every run row in one insert, every step
row in one (a root step with nothing to render goes in queued already), the events in one, then
the first :func:`~awe.engine.transitions.advance` pass of each run that has something left for
it, over the step rows it was just given (a run created in this transaction is seen by no other
one, so it needs neither a lock nor a read back).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, insert

from awe.core.errors import ValidationFailed
from awe.core.ids import new_id
from awe.engine import states, transitions
from awe.engine.events import add_events, buffered_events, notify, state_event
from awe.engine.retry import RetryPolicy
from awe.engine.spec import CHILD_KIND
from awe.engine.templating import has_template
from awe.storage.engine_models import Run, Step

#: The longest the first passes of a batch's runs may take together (one run's has its own
#: template allowance, engine/transitions.py): past it the batch is refused, not half-made.
BATCH_SECONDS = 10.0
#: The columns of a step row that advance reads (what its own select would give it).
_ADVANCE_KEYS = ("id", "step_key", "status", "needs", "definition", "on_failure", "output", "queue")


@dataclass
class NewRun:
    """One run to create: its spec (normalised), resolved inputs and where it sits."""

    spec: dict[str, Any]
    inputs: dict[str, Any]
    queue: str | None = None
    priority: int | None = None
    idempotency_key: str | None = None
    trace_id: str | None = None
    project_id: str | None = None
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    forked_from_step: str | None = None
    #: Step key → output taken over as succeeded (a fork).
    reused: dict[str, Any] = field(default_factory=dict)
    workflow_version: int | None = None
    trusted: bool = True
    depth: int = 0


def create_run(conn: Connection, *, now: datetime, **what: Any) -> str:
    """Insert a run and its steps (``what``: the fields of :class:`NewRun`); its id."""
    return create_runs(conn, [NewRun(**what)], now=now)[0]


def create_runs(conn: Connection, new: list[NewRun], *, now: datetime) -> list[str]:
    """Insert the runs and their steps and ready what can run; their ids, in order."""
    run_rows: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    for item in new:
        run_rows.append(_run_row(item, now))
        step_rows.extend(_step_rows(item, run_rows[-1], now))
    if not run_rows:
        return []
    # In key order: two batches sharing keys take the keys' index entries in the same order,
    # so on PostgreSQL the second waits for the first (and then fails on the key it took),
    # never a deadlock.
    conn.execute(insert(Run), sorted(run_rows, key=_key_order))
    # Columns left NULL (not JSON null) are left out: rows go in one insert per shape.
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in step_rows:
        slim = {k: v for k, v in row.items() if v is not None or k not in _NULL_UNLESS_SET}
        shapes.setdefault(tuple(slim), []).append(slim)
    for rows in shapes.values():
        conn.execute(insert(Step), rows)
    steps_of: dict[str, dict[str, dict[str, Any]]] = {row["id"]: {} for row in run_rows}
    for step in step_rows:
        steps_of[step["run_id"]][step["step_key"]] = {k: step[k] for k in _ADVANCE_KEYS}
    started = time.monotonic()
    with buffered_events(conn):  # every run's events in one numbering update and one insert
        events = [
            state_event(row["id"], None, states.RUN_QUEUED, now, workflow=row["workflow_name"])
            for row in run_rows
        ]
        woken: set[str] = set()
        for step in step_rows:
            if step["status"] == states.QUEUED:  # a plain root, inserted ready
                events.append(state_event(step["run_id"], step["step_key"], states.QUEUED, now))
                woken.add(step["queue"])
        add_events(conn, events)
        notify(conn, woken)
        for i, row in enumerate(run_rows):
            if i and time.monotonic() - started > BATCH_SECONDS:
                # Each run's first pass has its own template allowance; a batch whose passes
                # together hold the write lock this long is refused whole (nothing is written).
                raise ValidationFailed(
                    f"starting these runs took over {BATCH_SECONDS:g} s (their templates or"
                    f" child runs) after {i} of {len(run_rows)}: start fewer runs per batch"
                )
            steps = steps_of[row["id"]]
            if _nothing_to_advance(steps):
                continue
            # The row as lock_run would read it: advance and what it calls use these fields.
            locked = SimpleNamespace(**{k: row[k] for k in _LOCKED_KEYS})
            transitions.advance(conn, row["id"], now=now, locked=locked, steps=steps)
    return [row["id"] for row in run_rows]


def _key_order(row: Mapping[str, Any]) -> tuple[bool, str]:
    return row["idempotency_key"] is None, row["idempotency_key"] or ""


#: Step columns that stay SQL NULL until set (a JSON column given None would store JSON null).
_NULL_UNLESS_SET = ("input", "output", "run_after", "finished_at")


def _plain_root(step: dict[str, Any], reused: dict[str, Any]) -> bool:
    """A step that advance would queue as it is: no needs, no condition, no templates, no
    items, not a child workflow, not taken over from a fork. It is inserted queued, with its
    parameters as they stand (advance's ``_ready`` would write exactly these)."""
    return (
        not step["needs"]
        and step["id"] not in reused
        and step["kind"] != CHILD_KIND
        and "when" not in step
        and "for_each" not in step
        and not has_template(step.get("with", {}))
    )


def _nothing_to_advance(steps: dict[str, dict[str, Any]]) -> bool:
    """Whether advance would change nothing: some step is still open, and every pending step
    waits on an open one (so none can be readied, skipped, or the run finished)."""
    open_keys = {k for k, s in steps.items() if s["status"] in states.STEP_OPEN}
    return bool(open_keys) and all(
        any(need in open_keys for need in s["needs"])
        for s in steps.values()
        if s["status"] == states.PENDING
    )


_LOCKED_KEYS = (
    "id",
    "status",
    "inputs",
    "spec",
    "project_id",
    "trace_id",
    "parent_step_id",
    "trusted",
    "depth",
    "workflow_name",
    "created_at",
)


def _run_row(item: NewRun, now: datetime) -> dict[str, Any]:
    spec = item.spec
    return {
        "id": new_id(),
        "project_id": item.project_id,
        "workflow_name": spec["name"],
        "workflow_version": item.workflow_version,
        "spec": spec,
        "inputs": item.inputs,
        "status": states.RUN_QUEUED,
        "idempotency_key": item.idempotency_key,
        "queue": item.queue or spec["queue"],
        "priority": spec["priority"] if item.priority is None else item.priority,
        "parent_run_id": item.parent_run_id,
        "parent_step_id": item.parent_step_id,
        "forked_from_step": item.forked_from_step,
        "trace_id": item.trace_id,
        "trusted": item.trusted,
        "depth": item.depth,
        "event_seq": 0,
        "created_at": now,
    }


def _step_rows(item: NewRun, run: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for step in item.spec["steps"]:
        policy = RetryPolicy.from_definition(step.get("retry"))
        done = step["id"] in item.reused
        plain = _plain_root(step, item.reused)
        rows.append(
            {
                "id": new_id(),
                "run_id": run["id"],
                "step_key": step["id"],
                "workflow_name": run["workflow_name"],
                "kind": step["kind"],
                "needs": step["needs"],
                "definition": step,
                "status": states.SUCCEEDED
                if done
                else (states.QUEUED if plain else states.PENDING),
                "output": item.reused.get(step["id"]),
                "input": step.get("with", {}) if plain else None,
                "run_after": now if plain else None,
                "queue": step.get("queue") or run["queue"],
                "priority": step["priority"]
                if step.get("priority") is not None
                else run["priority"],
                "attempt": 0,
                "tries": 0,
                "max_attempts": policy.max_attempts,
                "on_failure": step.get("on_failure", "fail"),
                "errors": [],
                "created_at": now,
                "finished_at": now if done else None,
            }
        )
    return rows
