"""Recording what a worker's steps reported: its results, in batches (group commit).

One transaction takes every result pending: the successes together (engine/completion.py),
then what needs more (failures, runs to ready or to end in full) one by one, each in a savepoint
of its own, in transactions of about RECORD_SECONDS each. A result that cannot be applied fails
its own step, never the batch; a result whose lease was lost is refused, never recorded.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from awe.core import metrics
from awe.core.clock import Clock
from awe.core.logging import get_logger
from awe.engine import completion, events, results, states, transitions
from awe.engine.errors import LeaseLost
from awe.engine.executor import Outcome
from awe.engine.step_logs import StepLogs
from awe.engine.worker_support import unrecordable
from awe.storage import queue as queue_sql
from awe.storage.database import Database, is_outage

log = get_logger("worker")
#: How long one transaction recording results may go on taking more: advancing a run (its
#: templates, its child runs) happens inside, and the write lock must come back to the others.
RECORD_SECONDS = 1.0
Batch = list[tuple[queue_sql.ClaimedStep, Outcome]]


class Recorder:
    """Records batches of a worker's results (``retrying``: the worker's retry of database
    calls while the database is out; ``seconds``: how long a step ran, by its lease token)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        logs: StepLogs,
        retrying: Callable[[Callable[[], Any], str], Any],
        seconds: Callable[[str], float | None],
    ) -> None:
        self.db = db
        self.clock = clock
        self._logs = logs
        self._retrying = retrying
        self._seconds = seconds

    def record(self, batch: list[tuple[queue_sql.ClaimedStep, Outcome]]) -> None:
        """Record a batch: its successes together (engine/completion.py), then what needs more
        (failures, runs to ready or to end in full) one by one, each in a savepoint of its own,
        in transactions of about RECORD_SECONDS each: a result that cannot be applied fails its
        own step, never the batch; and however much advancing their runs costs (templates,
        child runs), the write lock is never held for much more than one result's advance."""
        # Runs are locked in id order, so two workers' batches never deadlock on PostgreSQL.
        batch.sort(key=lambda item: (item[0].run_id, item[0].id))
        logs = self._logs.take([step.lease_token for step, _ in batch])
        refused: list[tuple[queue_sql.ClaimedStep, LeaseLost]] = []
        remaining = batch
        while remaining:
            write = functools.partial(self._record_some, remaining, logs, refused)
            left = self._retrying(write, "record step results")
            remaining = left if left is not None else []
        for step, exc in refused:
            log.warning("result refused: lease lost", step=step.step_key, detail=exc.message)
            metrics.STEP_ATTEMPTS.labels(step.queue, step.kind, "lease_lost").inc()
        for step, outcome in batch:
            if outcome.failure is not None:
                log.warning(
                    "step failed",
                    run_id=step.run_id,
                    step=step.step_key,
                    category=outcome.failure.category,
                    error=outcome.failure.message[:500],
                )

    def _record_some(
        self,
        batch: list[tuple[queue_sql.ClaimedStep, Outcome]],
        logs: dict[str, list[dict[str, Any]]],
        refused: list[tuple[queue_sql.ClaimedStep, LeaseLost]],
    ) -> list[tuple[queue_sql.ClaimedStep, Outcome]]:
        """Record results of ``batch`` in one transaction: every success that needs no more
        than completing together, the rest one by one until RECORD_SECONDS have passed; what
        is left for the next transaction."""
        lost: list[tuple[queue_sql.ClaimedStep, LeaseLost]] = []
        with self.db.write() as conn:
            started = time.monotonic()
            now = self.clock.now()
            pending: list[dict[str, Any]] = []
            # Every run this batch may end, and their parents, locked at once in id order
            # (before the event buffer is set: the connection, and its info, outlive a failure).
            transitions.lock_family(conn, [step.run_id for step, _ in batch])
            conn.info[events.EVENT_BUFFER] = pending
            try:
                rest = self._complete_together(conn, batch, logs, now, pending, lost)
                left = list(rest)
                for step, outcome in rest:
                    # A step's logs go in with its result, before its final state.
                    pending.extend(logs[step.lease_token])
                    try:
                        self._apply_alone(conn, step, outcome, now, pending)
                    except LeaseLost as exc:  # checked before any write of this step
                        lost.append((step, exc))
                    left.pop(0)
                    if time.monotonic() - started > RECORD_SECONDS:
                        break
            finally:
                del conn.info[events.EVENT_BUFFER]
            events.insert_tolerant(conn, pending)
        refused.extend(lost)  # only once committed: a retried transaction starts afresh
        return left

    def _complete_together(
        self,
        conn: Connection,
        batch: list[tuple[queue_sql.ClaimedStep, Outcome]],
        logs: dict[str, list[dict[str, Any]]],
        now: datetime,
        pending: list[dict[str, Any]],
        lost: list[tuple[queue_sql.ClaimedStep, LeaseLost]],
    ) -> list[tuple[queue_sql.ClaimedStep, Outcome]]:
        """Complete the batch's successes in a few statements (a savepoint: if the database
        refuses any of it, all of them are recorded one by one instead); what is left to
        record one by one."""
        # By lease token, not step id: a step may be in the batch twice (a stale claim's result
        # and the newer claim's), and only the newer one may be recorded.
        by_token = {step.lease_token: step for step, _ in batch}
        successes = [
            completion.Success(s.id, s.run_id, s.lease_token, s.attempt, o.output)
            for s, o in batch
            if o.failure is None
        ]
        if not successes:
            return batch
        mark, counted = len(pending), metrics.mark(conn)
        for success in successes:  # a step's logs go in before its final state
            pending.extend(logs[success.token])
        try:
            with conn.begin_nested():
                recorded = completion.complete_many(conn, successes, now=now)
        except Exception as exc:
            if is_outage(exc):
                raise
            del pending[mark:]
            metrics.drop_since(conn, counted)
            log.warning("recording results together failed; recording them one by one",
                        steps=len(successes), error=str(exc).splitlines()[0][:200])  # fmt: skip
            return batch
        for success in recorded.done:
            self._count(conn, by_token[success.token], states.SUCCEEDED)
        for success in recorded.refused:
            step = by_token[success.token]
            lost.append((step, results.lost(step.id, step.attempt)))
        # The logs of what is left go in with their results, one by one.
        kept = {s.token for s in recorded.done} | {s.token for s in recorded.refused}
        later = {id(entry) for success in recorded.left for entry in logs[success.token]}
        if later:
            pending[mark:] = [entry for entry in pending[mark:] if id(entry) not in later]
        return [(step, outcome) for step, outcome in batch if step.lease_token not in kept]

    def _apply_alone(
        self,
        conn: Connection,
        step: queue_sql.ClaimedStep,
        outcome: Outcome,
        now: datetime,
        pending: list[dict[str, Any]],
    ) -> None:
        """Apply one result in a savepoint; if that fails, fail the step in another one."""
        mark, counted = len(pending), metrics.mark(conn)
        try:
            with conn.begin_nested():
                self._count(conn, step, self._apply(conn, step, outcome, now))
            return
        except LeaseLost:
            raise
        except Exception as exc:
            if is_outage(exc):
                raise  # the database is out: the whole batch is retried
            del pending[mark:]  # what the failed apply would have written
            metrics.drop_since(conn, counted)
            failure = unrecordable(exc)
            log.error(
                "could not record a step's result; failing the step",
                step=step.step_key,
                run_id=step.run_id,
                error=failure.message,
                exc_info=exc,
            )
        try:
            with conn.begin_nested():
                self._count(conn, step, self._apply(conn, step, Outcome(failure=failure), now))
        except LeaseLost:
            raise
        except Exception as exc:
            if is_outage(exc):
                raise
            del pending[mark:]
            metrics.drop_since(conn, counted)
            log.exception("could not fail the step either", step=step.step_key)

    def _count(self, conn: Connection, step: queue_sql.ClaimedStep, status: str) -> None:
        """Count the attempt (and how long it ran) once its result commits."""
        seconds = self._seconds(step.lease_token)
        outcome = "retrying" if status == "queued" else status

        def observe() -> None:
            metrics.STEP_ATTEMPTS.labels(step.queue, step.kind, outcome).inc()
            if seconds is not None:  # a duration never measured is not observed as zero
                metrics.STEP_DURATION.labels(step.queue, step.kind).observe(seconds)

        metrics.after_commit(conn, observe)

    def _apply(
        self, conn: Connection, step: queue_sql.ClaimedStep, outcome: Outcome, now: datetime
    ) -> str:
        """Record the outcome; the step's new status."""
        if outcome.failure is None:
            results.complete(
                conn,
                run_id=step.run_id,
                step_id=step.id,
                token=step.lease_token,
                attempt=step.attempt,
                output=outcome.output,
                now=now,
            )
            return "succeeded"
        return results.fail(
            conn,
            run_id=step.run_id,
            step_id=step.id,
            token=step.lease_token,
            attempt=step.attempt,
            failure=outcome.failure,
            now=now,
        )
