"""Re-opening (resume, requeue) and cancelling runs: the transitions that go backwards or stop.

Re-opened steps get a fresh budget of attempts; their attempt numbers go on from where they
were, so a step's history keeps one entry per attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from awe.engine import child_runs, children, states, transitions
from awe.engine.events import add_events, state_event
from awe.engine.spec import CHILD_KIND, downstream_of
from awe.storage.engine_models import Run, Step


def reopen(
    conn: Connection, run_id: str, now: datetime, *, step_ids: Iterable[str] | None = None
) -> list[str]:
    """Re-open a run's dead and cancelled steps (those of ``step_ids`` only, when given).

    What they had blocked (skipped or cancelled downstream) waits again; the run is running
    again; a child run's parent step waits for it again. Returns the step ids re-opened.
    """
    run = transitions.lock_run(conn, run_id)
    if run is None:
        return []
    wanted = None if step_ids is None else set(step_ids)
    reopened = _reopen_steps(
        conn,
        run,
        lambda r: (
            r.status in (states.DEAD, states.CANCELLED) and (wanted is None or r.id in wanted)
        ),
        status=states.PENDING,
        now=now,
    )
    if reopened:
        _wait_again(conn, run, now)
        transitions.advance(conn, run_id, now=now)
    return reopened


def _wait_again(conn: Connection, child: Any, now: datetime) -> None:
    """A child run was re-opened: the parent step it had failed waits for it again, and so on up."""
    if child.parent_step_id is None:
        return
    parent = conn.execute(select(Step.run_id).where(Step.id == child.parent_step_id)).one_or_none()
    if parent is None:
        return
    parent_run = transitions.lock_run(conn, parent.run_id)
    if parent_run is None:
        return
    reopened = _reopen_steps(
        conn,
        parent_run,
        lambda r: (
            r.id == child.parent_step_id
            and r.status == states.DEAD
            and r.error_category == children.CHILD_FAILED
        ),
        status=states.WAITING,
        now=now,
    )
    if reopened:
        _wait_again(conn, parent_run, now)


def _reopen_steps(
    conn: Connection, run: Any, chosen: Callable[[Any], bool], *, status: str, now: datetime
) -> list[str]:
    rows = conn.execute(
        select(Step.id, Step.step_key, Step.status, Step.needs, Step.error_category).where(
            Step.run_id == run.id
        )
    ).all()
    targets = [r for r in rows if chosen(r)]
    if not targets:
        return []
    target_keys = {r.step_key for r in targets}
    # Everything downstream that was skipped or cancelled because of them waits again.
    downstream = downstream_of(target_keys, {r.step_key: r.needs for r in rows})
    reset = [
        r
        for r in rows
        if r.step_key in downstream
        and r.step_key not in target_keys
        and r.status in (states.SKIPPED, states.CANCELLED)
    ]
    values: dict[str, Any] = {"status": status, "finished_at": None, "cancel_requested": False}
    if status == states.PENDING:
        values["tries"] = 0  # a fresh budget; attempt numbers go on
    conn.execute(update(Step).where(Step.id.in_([r.id for r in targets])).values(**values))
    if reset:
        conn.execute(
            update(Step)
            .where(Step.id.in_([r.id for r in reset]))
            .values(status=states.PENDING, finished_at=None, cancel_requested=False, tries=0)
        )
    conn.execute(
        update(Run)
        .where(Run.id == run.id)
        .values(status=states.RUN_RUNNING, finished_at=None, error=None, outputs=None)
    )
    add_events(conn, [state_event(run.id, None, "resumed", now, steps=sorted(target_keys))])
    return [r.id for r in targets]


def cancel_run(conn: Connection, run: Any, now: datetime) -> list[str]:
    """Cancel a locked, unfinished run: waiting steps at once, running ones at their heartbeat.

    Returns the ids of child runs still open, for the caller to cancel each in a transaction of
    its own (a transaction locks a run with its ancestors, never its children; see
    :mod:`awe.engine.transitions`).

    On PostgreSQL, a waiting step a worker is claiming at this moment (its row locked by the
    claim) is passed over rather than waited for: the claim locks steps, then their run, so
    waiting here would deadlock. That step starts running, and the worker's next heartbeat
    sees that its run is cancelled and stops it.
    """
    waiting_steps = select(Step.id).where(
        Step.run_id == run.id,
        Step.status.in_([states.PENDING, states.QUEUED, states.WAITING]),
    )
    if conn.dialect.name == "postgresql":
        waiting_steps = waiting_steps.with_for_update(skip_locked=True)
    ids = list(conn.execute(waiting_steps).scalars())
    waiting = conn.execute(
        update(Step)
        .where(Step.id.in_(ids))
        .values(status=states.CANCELLED, finished_at=now, error_category="cancelled")
        .returning(Step.id, Step.step_key, Step.kind)
    ).all()
    conn.execute(
        update(Step)
        .where(Step.run_id == run.id, Step.status == states.RUNNING)
        .values(cancel_requested=True)
    )
    conn.execute(
        update(Run)
        .where(Run.id == run.id)
        .values(status=states.RUN_CANCELLED, finished_at=now, error="cancelled")
    )
    transitions.count_finished(conn, run, states.RUN_CANCELLED, now, "cancelled")
    events = [state_event(run.id, r.step_key, states.CANCELLED, now) for r in waiting]
    events.append(state_event(run.id, None, states.RUN_CANCELLED, now))
    add_events(conn, events)
    if run.parent_step_id is not None:
        child_runs.child_finished(
            conn, run=run, status=states.RUN_CANCELLED, outputs=None, error="cancelled", now=now
        )
    open_children = conn.execute(
        select(Run.id).where(
            Run.parent_step_id.in_([r.id for r in waiting if r.kind == CHILD_KIND]),
            Run.status.not_in(list(states.RUN_FINAL)),
        )
    ).scalars()
    return list(open_children)
