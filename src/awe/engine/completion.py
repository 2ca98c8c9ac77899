"""Recording a batch of succeeded steps in a fixed number of statements, whatever its size.

The worker's reporter hands over every success of its batch at once (their runs, with the
ancestors, already locked in id order by :func:`awe.engine.transitions.lock_family`):

1. one read checks the leases (token and state); it takes no row lock, since every writer that
   changes a running step's state or token holds its run's lock first;
2. two reads, over the runs' *open* steps only (index ``ix_steps_run_status``), find the runs
   this batch may change beyond its own steps: a pending step all of whose needs are now closed
   (it must be readied, which may render templates), and runs with nothing left open (they end);
3. one update (executemany) completes every step of the runs that need nothing more, or only
   to end; the runs that end are read once, their result computed, and one update ends them.

The runs that need readying, and those whose end renders declared outputs or settles a parent
(a child run), are left to the caller, who records them one by one with the full advance of
:mod:`awe.engine.transitions`: the cost of those is the templates', and the worker bounds it.
So a wide fan-out costs per completion what a narrow one does: no completion reads the run's
other steps, except the one that readies the join and the one that ends the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, text, update

from awe.engine import states
from awe.engine.events import add_events, state_event
from awe.engine.transitions import count_finished, run_outcome
from awe.storage.engine_models import Run, Step

_STEPS: Table = Step.__table__  # type: ignore[assignment]
_RUNS: Table = Run.__table__  # type: ignore[assignment]
_OPEN = tuple(sorted(states.STEP_OPEN))
_FINAL = tuple(sorted(states.RUN_FINAL))


@dataclass(frozen=True)
class Success:
    """A step's output, reported by the claim that holds (or held) its lease."""

    step_id: str
    run_id: str
    token: str
    attempt: int
    output: Any


@dataclass
class Recorded:
    """What :func:`complete_many` did with a batch."""

    #: Completed here, with their runs advanced (ended, where nothing was left open).
    done: list[Success] = field(default_factory=list)
    #: Refused: the claim no longer holds the step's lease (nothing was written for them).
    refused: list[Success] = field(default_factory=list)
    #: Left for the caller to record one by one (their runs need readying or a full end).
    left: list[Success] = field(default_factory=list)


def complete_many(conn: Connection, batch: list[Success], *, now: datetime) -> Recorded:
    """Complete what of ``batch`` needs no more than completing, or ending its run; see the
    module's docstring. Runs inside the caller's transaction, with the runs already locked."""
    recorded = Recorded()
    if not batch:
        return recorded
    keys = _held(conn, batch)  # by lease token: a step may be in the batch twice (two claims)
    held = [s for s in batch if s.token in keys]
    recorded.refused = [s for s in batch if s.token not in keys]
    if not held:
        return recorded
    run_ids = sorted({s.run_id for s in held})
    batch_ids = [s.step_id for s in held]
    to_ready = _runs_with_readyable_steps(conn, run_ids, batch_ids)
    ending = _runs(conn, _runs_left_empty(conn, run_ids, batch_ids))
    full_end = {r.id for r in ending if r.parent_step_id is not None or r.spec.get("outputs")}
    leave = to_ready | full_end
    recorded.left = [s for s in held if s.run_id in leave]
    recorded.done = [s for s in held if s.run_id not in leave]
    if not recorded.done:
        return recorded
    conn.execute(
        _COMPLETE,
        [
            {"b_id": s.step_id, "b_token": s.token, "b_output": s.output, "b_now": now}
            for s in recorded.done
        ],
    )
    events = [
        state_event(s.run_id, keys[s.token], states.SUCCEEDED, now, attempt=s.attempt)
        for s in recorded.done
    ]
    _end(conn, [r for r in ending if r.id not in leave], now, events)
    add_events(conn, events)
    return recorded


def _held(conn: Connection, batch: list[Success]) -> dict[str, str]:
    """{lease token: step key} of the claims in ``batch`` that still hold their step's lease.

    Not locked: every writer that changes a running step's state or token (completion,
    failure, release, reaping, cancelling) holds its run's lock, which the caller holds, and
    the completing update checks token and state again.
    """
    statement = select(_STEPS.c.step_key, _STEPS.c.lease_token).where(
        _STEPS.c.id.in_(sorted({s.step_id for s in batch})),
        _STEPS.c.status == states.RUNNING,  # not cancelled, reaped or finished meanwhile
        _STEPS.c.lease_token.in_(sorted({s.token for s in batch})),  # the current claim only
    )
    return {row.lease_token: row.step_key for row in conn.execute(statement)}


# Whether step ``d`` is among the needs of step ``c``. ``needs`` is stored as JSON text, a list
# of step ids, and a step id is only letters, digits and underscores (engine/spec.py), so the
# quoted id appears in that text exactly when it is in the list: a substring search, where
# parsing the list (5,000 ids for a wide join) on every batch would cost more than the batch.
_NEEDED = {
    "postgresql": "strpos(c.needs::text, '\"' || d.step_key || '\"') > 0",
    "sqlite": "instr(c.needs, '\"' || d.step_key || '\"') > 0",
}
# The needs of step ``c`` as rows (``n.value``), to look each one up by (run_id, step_key).
_NEEDS = {
    "postgresql": "json_array_elements_text(c.needs) AS n(value)",
    "sqlite": "json_each(c.needs) AS n",
}
_LENGTH = {"postgresql": "length(c.needs::text)", "sqlite": "length(c.needs)"}
#: Needs (as JSON text) longer than this are checked by scanning the run's open steps, shorter
#: ones by looking each need up: either way the cost follows what is small (a wide join's
#: open needs are found at once among the open steps; a branch has one need to look up).
LONG_NEEDS = 2000

_READYABLE = """
SELECT DISTINCT c.run_id FROM steps c
 WHERE c.run_id IN :runs
   AND c.status = 'pending'
   AND EXISTS (SELECT 1 FROM steps d             -- it needs a step of this batch
                WHERE d.id IN :batch AND d.run_id = c.run_id AND {needed})
   AND ({length} > :long OR NOT EXISTS (  -- and no need of it stays open after it
          SELECT 1 FROM {needs} CROSS JOIN steps d  -- from each need (SQLite keeps this order)
           WHERE d.run_id = c.run_id AND d.step_key = n.value
             AND d.status IN :open AND d.id NOT IN :also_batch))
   AND ({length} <= :long OR NOT EXISTS (  -- (the same, for a long list of needs)
          SELECT 1 FROM steps d
           WHERE d.run_id = c.run_id AND d.status IN :open_too
             AND d.id NOT IN :batch_too AND {needed}))
"""

_LEFT_EMPTY = """
SELECT r.id FROM runs r
 WHERE r.id IN :runs
   AND r.status NOT IN :final                    -- a cancelled run is not ended again
   AND NOT EXISTS (SELECT 1 FROM steps d         -- nothing open but this batch's steps
                    WHERE d.run_id = r.id AND d.status IN :open AND d.id NOT IN :batch)
"""


def _runs_with_readyable_steps(conn: Connection, runs: list[str], batch: list[str]) -> set[str]:
    """Runs with a pending step that this batch's completions leave with every need closed."""
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    sql = _READYABLE.format(needed=_NEEDED[dialect], needs=_NEEDS[dialect], length=_LENGTH[dialect])
    lists = ("runs", "batch", "open", "also_batch", "open_too", "batch_too")
    statement = text(sql).bindparams(*(bindparam(name, expanding=True) for name in lists))
    found = conn.execute(
        statement,
        {"runs": runs, "batch": batch, "open": _OPEN, "also_batch": batch, "open_too": _OPEN,
         "batch_too": batch, "long": LONG_NEEDS},
    )  # fmt: skip
    return set(found.scalars())


def _runs_left_empty(conn: Connection, runs: list[str], batch: list[str]) -> list[str]:
    """Runs (not yet final) whose only open steps are this batch's: they end with it."""
    statement = text(_LEFT_EMPTY).bindparams(
        *(bindparam(name, expanding=True) for name in ("runs", "final", "open", "batch"))
    )
    found = conn.execute(statement, {"runs": runs, "final": _FINAL, "open": _OPEN, "batch": batch})
    return sorted(found.scalars())


def _runs(conn: Connection, run_ids: list[str]) -> list[Any]:
    """The rows of the runs that end (what ending one needs, and what its metrics name)."""
    if not run_ids:
        return []
    statement = select(
        _RUNS.c.id,
        _RUNS.c.spec,
        _RUNS.c.inputs,
        _RUNS.c.parent_step_id,
        _RUNS.c.trace_id,
        _RUNS.c.workflow_name,
        _RUNS.c.created_at,
    ).where(_RUNS.c.id.in_(run_ids))
    return list(conn.execute(statement.order_by(_RUNS.c.id)))


def _end(conn: Connection, runs: list[Any], now: datetime, events: list[dict[str, Any]]) -> None:
    """End these runs (every step closed, no declared outputs, no parent): one read of their
    steps, one update."""
    if not runs:
        return
    steps: dict[str, dict[str, dict[str, Any]]] = {r.id: {} for r in runs}
    rows = conn.execute(
        select(
            _STEPS.c.run_id,
            _STEPS.c.step_key,
            _STEPS.c.status,
            _STEPS.c.needs,
            _STEPS.c.on_failure,
            _STEPS.c.output,
        ).where(_STEPS.c.run_id.in_(list(steps)))
    )
    for row in rows:
        steps[row.run_id][row.step_key] = dict(row._mapping)
    ended = []
    for run in runs:
        status, outputs, error = run_outcome(run.spec, run.inputs, steps[run.id])
        ended.append(
            {"b_id": run.id, "b_status": status, "b_outputs": outputs, "b_error": error,
             "b_now": now}
        )  # fmt: skip
        events.append(state_event(run.id, None, status, now, **({"error": error} if error else {})))
        count_finished(conn, run, status, now, error)
    conn.execute(_END_RUN, ended)


# Built once (SQLAlchemy caches a statement by its object): executed with many parameter sets.
_COMPLETE = (
    update(_STEPS)
    .where(
        _STEPS.c.id == bindparam("b_id"),
        _STEPS.c.lease_token == bindparam("b_token"),  # checked above; kept as the guard
        _STEPS.c.status == states.RUNNING,
    )
    .values(
        status=states.SUCCEEDED,
        output=bindparam("b_output", type_=_STEPS.c.output.type),
        finished_at=bindparam("b_now", type_=_STEPS.c.finished_at.type),
        lease_owner=None,
        lease_expires_at=None,
        lease_token=None,
        error_category=None,
        error_message=None,
    )
)
_END_RUN = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        outputs=bindparam("b_outputs", type_=_RUNS.c.outputs.type),
        error=bindparam("b_error", type_=_RUNS.c.error.type),
        finished_at=bindparam("b_now", type_=_RUNS.c.finished_at.type),
    )
)
