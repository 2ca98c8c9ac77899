"""What a worker reports back: a step's output, a failed attempt, a released or lost lease.

Each runs inside the caller's transaction and first locks the step's run (the lock order of
:mod:`awe.engine.transitions`); each refuses a claim whose lease token is no longer the current
one, so a stale worker can never overwrite a newer attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from awe.core import metrics
from awe.engine import states
from awe.engine.errors import Failure, LeaseLost
from awe.engine.events import add_events, notify, state_event
from awe.engine.retry import RetryPolicy
from awe.engine.transitions import advance, attempt_error, count_dead, lock_run
from awe.storage import queue as queue_sql
from awe.storage.engine_models import Step


def lost(step_id: str, attempt: int) -> LeaseLost:
    return LeaseLost(f"step {step_id}: attempt {attempt} no longer holds the step's lease")


def complete(
    conn: Connection,
    *,
    run_id: str,
    step_id: str,
    token: str,
    attempt: int,
    output: Any,
    now: datetime,
) -> None:
    """Record a step's output, if this claim still holds its lease; then advance the run."""
    run = lock_run(conn, run_id)
    key = queue_sql.complete_step(conn, step_id=step_id, token=token, output=output, now=now)
    if key is None:
        raise lost(step_id, attempt)
    add_events(conn, [state_event(run_id, key, states.SUCCEEDED, now, attempt=attempt)])
    advance(conn, run_id, now=now, locked=run)


def fail(
    conn: Connection,
    *,
    run_id: str,
    step_id: str,
    token: str | None,
    attempt: int,
    failure: Failure,
    now: datetime,
    policy: RetryPolicy | None = None,
) -> str:
    """Record a failed attempt: back to 'queued' after a backoff, or 'dead'. Returns the status.

    ``token`` None is the reaper's call for an expired lease (checked by the caller).
    """
    run = lock_run(conn, run_id)
    if token is not None and not queue_sql.guard_lease(conn, step_id=step_id, token=token):
        raise lost(step_id, attempt)
    row = conn.execute(
        select(
            Step.step_key,
            Step.errors,
            Step.definition,
            Step.cancel_requested,
            Step.tries,
            Step.queue,
        ).where(Step.id == step_id)
    ).one()
    policy = policy or RetryPolicy.from_definition(row.definition.get("retry"))
    history = [
        *(row.errors or []),
        attempt_error(attempt, failure.category, failure.message, now),
    ]
    retry = failure.retryable and policy.can_retry(row.tries) and not row.cancel_requested
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
        "lease_token": None,
    }
    data: dict[str, Any] = {
        "attempt": attempt,
        "category": failure.category,
        "error": failure.message,
    }
    if retry:
        delay = policy.delay(row.tries)
        values["run_after"] = now + timedelta(seconds=delay)
        data["retry_in"] = round(delay, 3)
    else:
        values["finished_at"] = now
    conn.execute(update(Step).where(Step.id == step_id).values(**values))
    if status == states.DEAD:
        count_dead(conn, row.queue, failure.category)
    event = state_event(run_id, row.step_key, "retrying" if retry else status, now, **data)
    event["level"] = "warning" if retry else "error"
    add_events(conn, [event])
    if not retry:
        advance(conn, run_id, now=now, locked=run)
    return status


def release(
    conn: Connection, *, run_id: str, step_id: str, token: str, now: datetime
) -> str | None:
    """Give a lease back unfinished (worker shutdown): the attempt does not count.

    A step whose run is being cancelled is cancelled instead of put back in the queue. Returns
    the step's new status (None when the lease was no longer held).
    """
    run = lock_run(conn, run_id)
    if not queue_sql.guard_lease(conn, step_id=step_id, token=token):
        return None
    current = conn.execute(
        select(Step.step_key, Step.queue, Step.cancel_requested).where(Step.id == step_id)
    ).one()
    cleared = {"lease_owner": None, "lease_expires_at": None, "lease_token": None}
    if current.cancel_requested:
        conn.execute(
            update(Step)
            .where(Step.id == step_id)
            .values(
                status=states.CANCELLED,
                finished_at=now,
                error_category="cancelled",
                error_message="cancelled while its worker was stopping",
                **cleared,
            )
        )
        add_events(conn, [state_event(run_id, current.step_key, states.CANCELLED, now)])
        advance(conn, run_id, now=now, locked=run)
        return states.CANCELLED
    conn.execute(
        update(Step)
        .where(Step.id == step_id)
        .values(status=states.QUEUED, tries=Step.tries - 1, run_after=now, **cleared)
    )
    add_events(
        conn,
        [
            state_event(
                run_id,
                current.step_key,
                states.QUEUED,
                now,
                reason="released by a stopping worker",
            )
        ],
    )
    notify(conn, {current.queue})
    return states.QUEUED


def reap_one(conn: Connection, *, step_id: str, now: datetime) -> str | None:
    """Return one expired lease to the queue (or the dead-letter queue if out of attempts)."""
    row = conn.execute(select(Step.run_id).where(Step.id == step_id)).one_or_none()
    if row is None:
        return None
    if lock_run(conn, row.run_id, skip_locked=True) is None:
        return None  # being changed right now (its result recorded, say): see at the next beat
    if not queue_sql.lease_expired(conn, step_id=step_id, now=now):
        return None  # completed or heartbeated meanwhile
    current = conn.execute(
        select(Step.lease_owner, Step.attempt, Step.queue).where(Step.id == step_id)
    ).one()
    failure = Failure("lease_lost", f"worker {current.lease_owner} stopped heartbeating", True)
    status = fail(
        conn,
        run_id=row.run_id,
        step_id=step_id,
        token=None,
        attempt=current.attempt,
        failure=failure,
        now=now,
        policy=_no_wait_policy(conn, step_id),
    )
    if status == states.QUEUED:
        notify(conn, {current.queue})
    metrics.after_commit(conn, metrics.LEASE_EXPIRIES.labels(current.queue).inc)
    return status


def _no_wait_policy(conn: Connection, step_id: str) -> RetryPolicy:
    # A lost lease is the worker's fault, not the step's: re-run at once, attempts still count.
    definition = conn.execute(select(Step.definition).where(Step.id == step_id)).scalar_one()
    policy = RetryPolicy.from_definition(definition.get("retry"))
    return RetryPolicy(max_attempts=policy.max_attempts, backoff=(0.0,), jitter=0.0)
