"""Every change of a run's or step's state, each inside the caller's transaction.

Lock order, everywhere: the run row first, then its steps. Completion, failure, reaping and
cancellation of one run are thereby serialised (two branches finishing at once both see each
other, so their join step is promoted exactly once), and never deadlock with each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from awe.core.ids import new_id
from awe.engine import states
from awe.engine.errors import Failure, LeaseLost, StepError
from awe.engine.retry import RetryPolicy
from awe.engine.templating import has_template, render, truthy
from awe.storage import queue as queue_sql
from awe.storage.engine_models import Run, RunEvent, Step

NOTIFY_CHANNEL = "awe_steps"


# ---------------------------------------------------------------------------------- events


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
            "SELECT pg_notify(%(channel)s, %(queue)s)", {"channel": NOTIFY_CHANNEL, "queue": name}
        )


# ------------------------------------------------------------------------------------ runs


def lock_run(conn: Connection, run_id: str) -> Any:
    """The run's row, locked for this transaction on PostgreSQL (SQLite is serialised already)."""
    statement = select(Run.id, Run.status, Run.inputs, Run.spec).where(Run.id == run_id)
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
            _ready(conn, run_id, step, context, now, events, woken)
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
    run_id: str,
    step: dict[str, Any],
    context: dict[str, Any],
    now: datetime,
    events: list[dict[str, Any]],
    woken: set[str],
) -> None:
    definition = step["definition"]
    key = step["step_key"]
    try:
        when = definition.get("when")
        if when is not None and not truthy(render(when, context, where=f"step {key}: when")):
            _set_status(conn, step, states.SKIPPED, now, events, run_id, reason="when is false")
            return
        params = _params(definition, context, key)
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
) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": now}
    if category is not None:
        values.update(error_category=category, error_message=message)
    conn.execute(update(Step).where(Step.id == step["id"]).values(**values))
    step["status"] = status
    data = {k: v for k, v in (("reason", reason), ("category", category), ("error", message)) if v}
    events.append(state_event(run_id, step["step_key"], status, now, **data))


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


def complete(
    conn: Connection,
    *,
    run_id: str,
    step_id: str,
    owner: str,
    attempt: int,
    output: Any,
    now: datetime,
) -> None:
    """Record a step's output, if this worker still holds its lease; then advance the run."""
    run = lock_run(conn, run_id)
    key = queue_sql.complete_step(
        conn, step_id=step_id, owner=owner, attempt=attempt, output=output, now=now
    )
    if key is None:
        raise LeaseLost(f"step {step_id}: lease of attempt {attempt} is no longer held by {owner}")
    add_events(conn, [state_event(run_id, key, states.SUCCEEDED, now, attempt=attempt)])
    advance(conn, run_id, now=now, locked=run)


def fail(
    conn: Connection,
    *,
    run_id: str,
    step_id: str,
    owner: str | None,
    attempt: int,
    failure: Failure,
    now: datetime,
    policy: RetryPolicy | None = None,
) -> str:
    """Record a failed attempt: back to 'queued' after a backoff, or 'dead'. Returns the status.

    ``owner`` None is the reaper's call for an expired lease (checked by the caller).
    """
    lock_run(conn, run_id)
    if owner is not None and not queue_sql.guard_lease(
        conn, step_id=step_id, owner=owner, attempt=attempt
    ):
        raise LeaseLost(f"step {step_id}: lease of attempt {attempt} is no longer held by {owner}")
    row = conn.execute(
        select(Step.step_key, Step.errors, Step.definition, Step.cancel_requested).where(
            Step.id == step_id
        )
    ).one()
    policy = policy or RetryPolicy.from_definition(row.definition.get("retry"))
    history = [
        *(row.errors or []),
        {
            "attempt": attempt,
            "category": failure.category,
            "message": failure.message[:2000],
            "at": now.isoformat(),
        },
    ]
    retry = failure.retryable and policy.can_retry(attempt) and not row.cancel_requested
    status = states.QUEUED if retry else states.DEAD
    if row.cancel_requested:
        status = states.CANCELLED
    values: dict[str, Any] = {
        "status": status,
        "errors": history,
        "error_category": failure.category,
        "error_message": failure.message,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    data: dict[str, Any] = {
        "attempt": attempt,
        "category": failure.category,
        "error": failure.message,
    }
    if retry:
        delay = policy.delay(attempt)
        values["run_after"] = now + timedelta(seconds=delay)
        data["retry_in"] = round(delay, 3)
    else:
        values["finished_at"] = now
    conn.execute(update(Step).where(Step.id == step_id).values(**values))
    event = state_event(run_id, row.step_key, "retrying" if retry else status, now, **data)
    event["level"] = "warning" if retry else "error"
    add_events(conn, [event])
    if not retry:
        advance(conn, run_id, now=now)
    return status


def release(
    conn: Connection, *, run_id: str, step_id: str, owner: str, attempt: int, now: datetime
) -> None:
    """Give a lease back unfinished (worker shutdown): the attempt does not count."""
    lock_run(conn, run_id)
    if not queue_sql.guard_lease(conn, step_id=step_id, owner=owner, attempt=attempt):
        return
    key = conn.execute(
        update(Step)
        .where(Step.id == step_id)
        .values(
            status=states.QUEUED,
            attempt=Step.attempt - 1,
            run_after=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(Step.step_key, Step.queue)
    ).one()
    add_events(
        conn,
        [
            state_event(
                run_id, key.step_key, states.QUEUED, now, reason="released by a stopping worker"
            )
        ],
    )
    notify(conn, {key.queue})


def reap_one(conn: Connection, *, step_id: str, now: datetime) -> str | None:
    """Return one expired lease to the queue (or the dead-letter queue if out of attempts)."""
    row = conn.execute(select(Step.run_id).where(Step.id == step_id)).one_or_none()
    if row is None:
        return None
    lock_run(conn, row.run_id)
    current = conn.execute(
        select(
            Step.status, Step.lease_expires_at, Step.lease_owner, Step.attempt, Step.queue
        ).where(Step.id == step_id)
    ).one()
    if (
        current.status != states.RUNNING
        or current.lease_expires_at is None
        or current.lease_expires_at >= now
    ):
        return None  # completed or heartbeated meanwhile
    failure = Failure("lease_lost", f"worker {current.lease_owner} stopped heartbeating", True)
    status = fail(
        conn,
        run_id=row.run_id,
        step_id=step_id,
        owner=None,
        attempt=current.attempt,
        failure=failure,
        now=now,
        policy=_no_wait_policy(conn, step_id),
    )
    if status == states.QUEUED:
        notify(conn, {current.queue})
    return status


def _no_wait_policy(conn: Connection, step_id: str) -> RetryPolicy:
    # A lost lease is the worker's fault, not the step's: re-run at once, attempts still count.
    definition = conn.execute(select(Step.definition).where(Step.id == step_id)).scalar_one()
    policy = RetryPolicy.from_definition(definition.get("retry"))
    return RetryPolicy(max_attempts=policy.max_attempts, backoff=(0.0,), jitter=0.0)
