"""Every change of a run's or step's state, each inside the caller's transaction.

Lock order, everywhere: the run row first, then its steps. Completion, failure, reaping and
cancellation of one run are thereby serialised (two branches finishing at once both see each
other, so their join step is promoted exactly once), and never deadlock with each other.
Between runs the order is child before parent: a child run that finishes locks its parent's run
last, to settle the step waiting for it; a cancelled parent cancels its children afterwards, each
in a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from awe.core.ids import new_id
from awe.engine import children, states
from awe.engine.errors import StepError
from awe.engine.events import add_events, notify, state_event
from awe.engine.retry import RetryPolicy
from awe.engine.spec import CHILD_KIND, as_dry_run, downstream_of
from awe.engine.templating import has_template, render, truthy
from awe.storage.engine_models import Run, Step

# ------------------------------------------------------------------------------------ runs


def lock_run(conn: Connection, run_id: str) -> Any:
    """The run's row, locked for this transaction on PostgreSQL (SQLite is serialised already)."""
    statement = select(
        Run.id, Run.status, Run.inputs, Run.spec, Run.project_id, Run.trace_id, Run.parent_step_id
    ).where(Run.id == run_id)
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update()
    return conn.execute(statement).one_or_none()


def create_run(
    conn: Connection,
    *,
    spec: dict[str, Any],
    inputs: dict[str, Any],
    now: datetime,
    queue: str | None = None,
    priority: int | None = None,
    idempotency_key: str | None = None,
    trace_id: str | None = None,
    project_id: str | None = None,
    parent_run_id: str | None = None,
    parent_step_id: str | None = None,
    forked_from_step: str | None = None,
    reused: dict[str, Any] | None = None,
    workflow_version: int | None = None,
) -> str:
    """Insert a run and its steps (``reused``: step key → output taken over as succeeded)."""
    run_id = new_id()
    run_queue = queue or spec["queue"]
    run_priority = spec["priority"] if priority is None else priority
    conn.execute(
        insert(Run).values(
            id=run_id,
            project_id=project_id,
            workflow_name=spec["name"],
            workflow_version=workflow_version,
            spec=spec,
            inputs=inputs,
            status=states.RUN_QUEUED,
            idempotency_key=idempotency_key,
            queue=run_queue,
            priority=run_priority,
            parent_run_id=parent_run_id,
            parent_step_id=parent_step_id,
            forked_from_step=forked_from_step,
            trace_id=trace_id,
            created_at=now,
        )
    )
    reused = reused or {}
    rows = []
    for step in spec["steps"]:
        policy = RetryPolicy.from_definition(step.get("retry"))
        done = step["id"] in reused
        rows.append(
            {
                "id": new_id(),
                "run_id": run_id,
                "step_key": step["id"],
                "kind": step["kind"],
                "needs": step["needs"],
                "definition": step,
                "status": states.SUCCEEDED if done else states.PENDING,
                "output": reused.get(step["id"]),
                "queue": step.get("queue") or run_queue,
                "priority": step["priority"] if step.get("priority") is not None else run_priority,
                "max_attempts": policy.max_attempts,
                "on_failure": step.get("on_failure", "fail"),
                "errors": [],
                "created_at": now,
                "finished_at": now if done else None,
            }
        )
    conn.execute(insert(Step), rows)
    add_events(conn, [state_event(run_id, None, states.RUN_QUEUED, now, workflow=spec["name"])])
    advance(conn, run_id, now=now)
    return run_id


def advance(conn: Connection, run_id: str, *, now: datetime, locked: Any = None) -> None:
    """Move the run forward: ready pending steps whose needs are met, skip blocked ones, finish.

    ``locked`` is the run's row when the caller has already locked it in this transaction.
    """
    run = locked if locked is not None else lock_run(conn, run_id)
    if run is None or run.status in states.RUN_FINAL:
        return
    rows = conn.execute(
        select(
            Step.id,
            Step.step_key,
            Step.status,
            Step.needs,
            Step.definition,
            Step.on_failure,
            Step.output,
            Step.queue,
        ).where(Step.run_id == run_id)
    ).all()
    steps = {row.step_key: dict(row._mapping) for row in rows}
    events: list[dict[str, Any]] = []
    woken: set[str] = set()
    context: dict[str, Any] | None = None
    changed = True
    while changed:
        changed = False
        for step in steps.values():
            if step["status"] != states.PENDING:
                continue
            deps = [steps[n] for n in step["needs"]]
            if any(d["status"] in states.STEP_OPEN for d in deps):
                continue
            changed = True
            blocked = next((d for d in deps if _blocks(d)), None)
            if blocked is not None:
                _set_status(
                    conn,
                    step,
                    states.SKIPPED,
                    now,
                    events,
                    run_id,
                    reason=f"upstream step {blocked['step_key']} {blocked['status']}",
                )
                continue
            if context is None:
                context = template_context(run.inputs, steps)
            _ready(conn, run, step, context, now, events, woken)
    open_steps = [s for s in steps.values() if s["status"] in states.STEP_OPEN]
    if not open_steps:
        _finish_run(conn, run, steps, now, events)
    add_events(conn, events)
    notify(conn, woken)


def _blocks(dep: dict[str, Any]) -> bool:
    """Whether a finished upstream step stops its dependents (they get skipped)."""
    if dep["status"] in (states.SKIPPED, states.CANCELLED):
        return True
    return bool(dep["status"] == states.DEAD and dep["on_failure"] != "continue")


def template_context(inputs: dict[str, Any], steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What templates may read: ``inputs`` and ``steps.<id>.output`` / ``.status``."""
    return {
        "inputs": inputs,
        "steps": {
            key: {"output": s["output"], "status": s["status"]}
            for key, s in steps.items()
            if s["status"] not in states.STEP_OPEN
        },
    }


def _ready(
    conn: Connection,
    run: Any,
    step: dict[str, Any],
    context: dict[str, Any],
    now: datetime,
    events: list[dict[str, Any]],
    woken: set[str],
) -> None:
    definition = step["definition"]
    key = step["step_key"]
    run_id = run.id
    try:
        when = definition.get("when")
        if when is not None and not truthy(render(when, context, where=f"step {key}: when")):
            _set_status(conn, step, states.SKIPPED, now, events, run_id, reason="when is false")
            return
        params = _params(definition, context, key)
        if definition["kind"] == CHILD_KIND:
            _start_child(conn, run, step, params, now, events)
            return
    except StepError as exc:
        _set_status(
            conn, step, states.DEAD, now, events, run_id, category=exc.category, message=exc.message
        )
        return
    conn.execute(
        update(Step)
        .where(Step.id == step["id"])
        .values(status=states.QUEUED, input=params, run_after=now)
    )
    step["status"] = states.QUEUED
    events.append(state_event(run_id, key, states.QUEUED, now))
    woken.add(step["queue"])


def _params(definition: dict[str, Any], context: dict[str, Any], key: str) -> Any:
    """The step's resolved ``with:``; for a ``for_each`` step, one per item, in order."""
    params = definition.get("with", {})
    if "for_each" not in definition:
        return (
            render(params, context, where=f"step {key}: with") if has_template(params) else params
        )
    items = render(definition["for_each"], context, where=f"step {key}: for_each")
    if not isinstance(items, list):
        raise StepError(
            f"step {key}: for_each must give a list, not {type(items).__name__}",
            category="validation",
            retryable=False,
        )
    return [
        render(params, {**context, "item": item}, where=f"step {key}: with (item {i})")
        for i, item in enumerate(items)
    ]


def _set_status(
    conn: Connection,
    step: dict[str, Any],
    status: str,
    now: datetime,
    events: list[dict[str, Any]],
    run_id: str,
    *,
    reason: str | None = None,
    category: str | None = None,
    message: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": now}
    if category is not None:
        values.update(error_category=category, error_message=message)
    if errors is not None:
        values["errors"] = errors
    conn.execute(update(Step).where(Step.id == step["id"]).values(**values))
    step["status"] = status
    data = {k: v for k, v in (("reason", reason), ("category", category), ("error", message)) if v}
    events.append(state_event(run_id, step["step_key"], status, now, **data))


def attempt_error(attempt: int, category: str, message: str, now: datetime) -> dict[str, Any]:
    """One entry of a step's ``errors`` history (what the DLQ shows for each attempt)."""
    return {
        "attempt": attempt,
        "category": category,
        "message": message[:2000],
        "at": now.isoformat(),
    }


def _finish_run(
    conn: Connection,
    run: Any,
    steps: dict[str, dict[str, Any]],
    now: datetime,
    events: list[dict[str, Any]],
) -> None:
    failed = [
        s for s in steps.values() if s["status"] == states.DEAD and s["on_failure"] != "continue"
    ]
    error = None
    outputs: dict[str, Any] = {}
    if failed:
        status = states.RUN_FAILED
        error = "step(s) failed: " + ", ".join(s["step_key"] for s in failed)
    else:
        status = states.RUN_SUCCEEDED
        try:
            outputs = _outputs(run.spec, run.inputs, steps)
        except StepError as exc:
            status, error = states.RUN_FAILED, exc.message
    conn.execute(
        update(Run)
        .where(Run.id == run.id)
        .values(status=status, outputs=outputs, error=error, finished_at=now)
    )
    events.append(state_event(run.id, None, status, now, **({"error": error} if error else {})))
    if run.parent_step_id is not None:
        add_events(conn, events)  # the child's events first, then its parent's
        events.clear()
        child_finished(conn, run=run, status=status, outputs=outputs, error=error, now=now)


def _outputs(
    spec: dict[str, Any], inputs: dict[str, Any], steps: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    declared = spec.get("outputs") or {}
    if declared:
        rendered = render(declared, template_context(inputs, steps), where="outputs")
        assert isinstance(rendered, dict)
        return rendered
    # Nothing declared: the outputs of the steps nothing else needs.
    needed = {n for s in steps.values() for n in s["needs"]}
    return {
        k: s["output"]
        for k, s in steps.items()
        if k not in needed and s["status"] == states.SUCCEEDED
    }


# ------------------------------------------------------------------------------ child runs


def _start_child(
    conn: Connection,
    run: Any,
    step: dict[str, Any],
    params: Any,
    now: datetime,
    events: list[dict[str, Any]],
) -> None:
    """Start (or resume) a workflow step's child run; the step waits for it, holding no lease."""
    key = step["step_key"]
    child = children.latest_child(conn, step["id"])
    reopened = False
    if child is not None and child.status in (states.RUN_FAILED, states.RUN_CANCELLED):
        # The parent step was resumed or requeued: resume its child from the failed step.
        reopened = bool(reopen(conn, child.id, now))
    if child is None or (child.status != states.RUN_SUCCEEDED and not reopened):
        stored, inputs = children.resolve(
            conn, step_key=key, params=params, project_key=run.project_id or ""
        )
        child_id = create_run(
            conn,
            spec=as_dry_run(stored.spec) if step["definition"].get("dry_run") else stored.spec,
            inputs=inputs,
            now=now,
            trace_id=run.trace_id,
            project_id=run.project_id,
            parent_run_id=run.id,
            parent_step_id=step["id"],
            workflow_version=stored.version,
        )
    else:
        child_id = child.id
    current = conn.execute(
        select(Run.status, Run.outputs, Run.error).where(Run.id == child_id)
    ).one()
    if current.status in states.RUN_FINAL:
        # Finished inside this transaction already (every step skipped, say): settle it now.
        _settle(
            conn,
            run.id,
            step,
            current.status,
            current.outputs,
            current.error,
            child_id,
            now,
            events,
        )
        return
    conn.execute(
        update(Step)
        .where(Step.id == step["id"])
        .values(
            status=states.WAITING,
            input=params,
            attempt=Step.attempt + 1,
            started_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    step["status"] = states.WAITING
    events.append(state_event(run.id, key, states.WAITING, now, child_run_id=child_id))
    mark_run_running(conn, {run.id}, now)  # no worker claims a waiting step: say it here


def _settle(
    conn: Connection,
    run_id: str,
    step: dict[str, Any],
    child_status: str,
    outputs: Any,
    error: str | None,
    child_id: str,
    now: datetime,
    events: list[dict[str, Any]],
) -> None:
    """Finish a workflow step from its child run's end: its outputs, or a dead step."""
    if child_status == states.RUN_SUCCEEDED:
        conn.execute(
            update(Step)
            .where(Step.id == step["id"])
            .values(
                status=states.SUCCEEDED,
                output=outputs,
                finished_at=now,
                error_category=None,
                error_message=None,
            )
        )
        step["status"], step["output"] = states.SUCCEEDED, outputs
        events.append(
            state_event(run_id, step["step_key"], states.SUCCEEDED, now, child_run_id=child_id)
        )
        return
    message = f"child run {child_id} {child_status}" + (f": {error}" if error else "")
    history = conn.execute(select(Step.errors, Step.attempt).where(Step.id == step["id"])).one()
    entry = attempt_error(history.attempt, children.CHILD_FAILED, message, now)
    _set_status(
        conn,
        step,
        states.DEAD,
        now,
        events,
        run_id,
        category=children.CHILD_FAILED,
        message=message,
        errors=[*(history.errors or []), entry],
    )


def child_finished(
    conn: Connection,
    *,
    run: Any,
    status: str,
    outputs: Any,
    error: str | None,
    now: datetime,
) -> None:
    """A child run ended: settle the parent's step that waits for it, then move the parent on."""
    parent = conn.execute(select(Step.run_id).where(Step.id == run.parent_step_id)).one_or_none()
    if parent is None:
        return
    parent_run = lock_run(conn, parent.run_id)
    step = conn.execute(
        select(Step.id, Step.step_key, Step.status).where(Step.id == run.parent_step_id)
    ).one()
    if parent_run is None or step.status != states.WAITING:
        return  # the parent moved on (cancelled, or still starting this child): nothing to do
    events: list[dict[str, Any]] = []
    _settle(conn, parent.run_id, dict(step._mapping), status, outputs, error, run.id, now, events)
    add_events(conn, events)
    advance(conn, parent.run_id, now=now, locked=parent_run)


def reopen(
    conn: Connection, run_id: str, now: datetime, *, step_ids: Iterable[str] | None = None
) -> list[str]:
    """Re-open a run's dead and cancelled steps (those of ``step_ids`` only, when given).

    What they had blocked (skipped or cancelled downstream) waits again; the run is running
    again; a child run's parent step waits for it again. Returns the step ids re-opened.
    """
    run = lock_run(conn, run_id)
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
        advance(conn, run_id, now=now)
    return reopened


def _wait_again(conn: Connection, child: Any, now: datetime) -> None:
    """A child run was re-opened: the parent step it had failed waits for it again, and so on up."""
    if child.parent_step_id is None:
        return
    parent = conn.execute(select(Step.run_id).where(Step.id == child.parent_step_id)).one_or_none()
    if parent is None:
        return
    parent_run = lock_run(conn, parent.run_id)
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
    conn: Connection, run: Any, chosen: Any, *, status: str, now: datetime
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
        values["attempt"] = 0
    conn.execute(update(Step).where(Step.id.in_([r.id for r in targets])).values(**values))
    if reset:
        conn.execute(
            update(Step)
            .where(Step.id.in_([r.id for r in reset]))
            .values(status=states.PENDING, finished_at=None, cancel_requested=False)
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
    its own (child before parent is the lock order; a parent never locks its children).
    """
    waiting = conn.execute(
        update(Step)
        .where(
            Step.run_id == run.id,
            Step.status.in_([states.PENDING, states.QUEUED, states.WAITING]),
        )
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
    events = [state_event(run.id, r.step_key, states.CANCELLED, now) for r in waiting]
    events.append(state_event(run.id, None, states.RUN_CANCELLED, now))
    add_events(conn, events)
    if run.parent_step_id is not None:
        child_finished(
            conn, run=run, status=states.RUN_CANCELLED, outputs=None, error="cancelled", now=now
        )
    open_children = conn.execute(
        select(Run.id).where(
            Run.parent_step_id.in_([r.id for r in waiting if r.kind == CHILD_KIND]),
            Run.status.not_in(list(states.RUN_FINAL)),
        )
    ).scalars()
    return list(open_children)


# ----------------------------------------------------------------------------- step results


def mark_run_running(conn: Connection, run_ids: set[str], now: datetime) -> None:
    """Runs whose first step was just claimed turn 'running'."""
    if not run_ids:
        return
    result = conn.execute(
        update(Run)
        .where(Run.id.in_(run_ids), Run.status == states.RUN_QUEUED)
        .values(status=states.RUN_RUNNING, started_at=now)
        .returning(Run.id)
    )
    add_events(conn, [state_event(r.id, None, states.RUN_RUNNING, now) for r in result])
