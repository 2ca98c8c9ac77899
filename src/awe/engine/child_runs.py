"""The state changes of ``kind: workflow`` steps: starting a child run, and settling the step.

The step holds no lease and no worker slot while it waits (its state is ``waiting``): the child
is an ordinary run, and when it finishes, its last transaction settles the parent's step and
moves the parent run on. Children nest at most AWE_MAX_WORKFLOW_DEPTH deep, so workflows that
call each other end in a clear error, not a recursion. A child runs with the privileges of the
one who pushed its workflow (engine/permissions.py). The reading side is :mod:`children`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from awe.core.errors import ValidationFailed
from awe.engine import children, creation, permissions, reopen, states, transitions
from awe.engine.errors import StepError
from awe.engine.events import add_events, state_event
from awe.engine.registry import default_registry
from awe.engine.spec import as_dry_run
from awe.storage.database import settings_of
from awe.storage.engine_models import Run, Step

#: The category of a workflow step refused for nesting too deep (or too wide).
TOO_DEEP = "workflow_depth"
#: Child runs one pass of the engine over a run may start, its children's children included.
#: Children start inside the transaction that readies their step, and theirs inside it too:
#: without a bound, a few workflows that each call the next several times would start
#: thousands of runs, holding the write lock all along.
MAX_CHILDREN_PER_PASS = 100
_pass = threading.local()


@contextmanager
def one_pass() -> Iterator[None]:
    """The child runs started inside, in this thread, count towards one MAX_CHILDREN_PER_PASS
    (nested inside another pass, as a child's own pass is, they count towards the outer one)."""
    if getattr(_pass, "started", None) is not None:
        yield
        return
    _pass.started = 0
    try:
        yield
    finally:
        _pass.started = None


def start_child(
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
        # The parent step was resumed or requeued: resume its child from the failed step. The
        # child is locked after its parent here, against the order (a child's id may even sort
        # first): without waiting, so a transaction holding it (resuming it, say) makes this
        # one fail with a lock error that its caller retries, never a deadlock.
        transitions.lock_run(conn, child.id, nowait=True)
        reopened = bool(reopen.reopen(conn, child.id, now))
    if child is None or (child.status != states.RUN_SUCCEEDED and not reopened):
        child_id = _new_child(conn, run, step, params, now)
    else:
        child_id = child.id
    current = conn.execute(
        select(Run.status, Run.outputs, Run.error).where(Run.id == child_id)
    ).one()
    if current.status in states.RUN_FINAL:
        # Finished inside this transaction already (every step skipped, say): settle it now.
        settle(
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
            ref_nonce=None,
            attempt=Step.attempt + 1,
            tries=Step.tries + 1,
            started_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    step["status"] = states.WAITING
    events.append(state_event(run.id, key, states.WAITING, now, child_run_id=child_id))
    transitions.mark_run_running(conn, {run.id}, now)  # no worker claims a waiting step


def _new_child(conn: Connection, run: Any, step: dict[str, Any], params: Any, now: datetime) -> str:
    key = step["step_key"]
    settings = settings_of(conn)
    _pass.started = (getattr(_pass, "started", None) or 0) + 1
    if _pass.started > MAX_CHILDREN_PER_PASS:
        raise StepError(
            f"step {key}: more than {MAX_CHILDREN_PER_PASS} child runs would start at once"
            " (workflows that call others many times over); call fewer, or split the work",
            category=TOO_DEEP,
            retryable=False,
        )
    if run.depth + 1 > settings.max_workflow_depth:
        raise StepError(
            f"step {key}: workflow steps nest more than {settings.max_workflow_depth} deep"
            " (AWE_MAX_WORKFLOW_DEPTH); do the workflows call each other?",
            category=TOO_DEEP,
            retryable=False,
        )
    stored, inputs = children.resolve(
        conn, step_key=key, params=params, project_key=run.project_id or ""
    )
    if run.trusted and not stored.trusted:
        raise StepError(
            children.untrusted_child(key, stored), category="permission", retryable=False
        )
    if not stored.trusted:
        try:
            refused = permissions.refused_steps(
                stored.spec["steps"], settings=settings, registry=default_registry
            )
        except ValidationFailed as exc:  # a kind it uses cannot be loaded
            raise StepError(
                f"step {key}: workflow {stored.name!r}: {exc}",
                category="validation",
                retryable=False,
            ) from None
        if refused:
            raise StepError(
                f"step {key}: workflow {stored.name!r} was pushed by a member: "
                + "; ".join(refused),
                category="permission",
                retryable=False,
            )
    return creation.create_run(
        conn,
        spec=as_dry_run(stored.spec) if step["definition"].get("dry_run") else stored.spec,
        inputs=inputs,
        now=now,
        trace_id=run.trace_id,
        project_id=run.project_id,
        parent_run_id=run.id,
        parent_step_id=step["id"],
        workflow_version=stored.version,
        trusted=stored.trusted,
        depth=run.depth + 1,
    )


def settle(
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
    entry = transitions.attempt_error(history.attempt, children.CHILD_FAILED, message, now)
    transitions.set_status(
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
    parent_run = transitions.lock_run(conn, parent.run_id)
    step = conn.execute(
        select(Step.id, Step.step_key, Step.status).where(Step.id == run.parent_step_id)
    ).one()
    if parent_run is None or step.status != states.WAITING:
        return  # the parent moved on (cancelled, or still starting this child): nothing to do
    events: list[dict[str, Any]] = []
    settle(conn, parent.run_id, dict(step._mapping), status, outputs, error, run.id, now, events)
    add_events(conn, events)
    transitions.advance(conn, parent.run_id, now=now, locked=parent_run)
