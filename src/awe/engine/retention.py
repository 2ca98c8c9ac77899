"""Retention: what is old enough to go, and deleting it in short batches.

Finished runs go with their steps and events (the foreign keys cascade) once they ended longer
ago than ``AWE_RETENTION_DAYS``; the audit log, security events and script execution records by
their own settings. Never touched: a run that is not finished (queued, running, waiting, its
steps leased or not), a finished child of a run that is not, a finished run with a child that
is not, and stored workflow versions (a schedule's pinned version stays runnable). Each batch is
one short transaction of at most ``AWE_RETENTION_BATCH_SIZE`` rows of the table it cleans, so
workers and the API never wait long behind it; on PostgreSQL a row another transaction holds
(a run being resumed, say) is skipped, not waited for, and goes at a later pass.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, or_, select

from awe.core import metrics
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.engine import states
from awe.storage.auth_models import AuditEntry, SecurityEvent
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step
from awe.storage.ops_models import ScriptExecution

#: The tables retention cleans, in the order it cleans them.
TABLES = ("runs", "steps", "run_events", "audit_log", "security_events", "script_executions")


@dataclass
class Counts:
    """Rows per table: found (a dry run) or deleted; and whether anything is left to do."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    done: bool = True

    def add(self, table: str, n: int) -> None:
        """Count ``n`` more rows of ``table``."""
        self.rows[table] += n

    @property
    def total(self) -> int:
        """Rows in every table together."""
        return sum(self.rows.values())


@dataclass(frozen=True)
class Cutoffs:
    """Rows older than these go (None: that table is kept forever)."""

    runs: datetime | None
    audit_log: datetime | None
    security_events: datetime | None
    script_executions: datetime | None

    @classmethod
    def of(cls, settings: Settings, now: datetime, older_than: timedelta | None = None) -> Cutoffs:
        """The settings' cutoffs at ``now``; ``older_than`` replaces every age but a 0 (kept
        forever stays kept)."""

        def cut(days: int) -> datetime | None:
            if days == 0:
                return None
            return now - (older_than if older_than is not None else timedelta(days=days))

        return cls(
            cut(settings.retention_days),
            cut(settings.retention_audit_days),
            cut(settings.retention_security_days),
            cut(settings.retention_scripts_days),
        )


def _old_runs(cutoff: datetime) -> ColumnElement[bool]:
    """Settled (see :func:`settled`) and finished before ``cutoff``."""
    return and_(settled(), Run.finished_at < cutoff)


def settled() -> ColumnElement[bool]:
    """Runs that may be deleted: finished, with no step still open (a cancelled run's step
    runs until its next heartbeat), no unfinished parent and no unfinished child (retention
    and erasure alike). The subqueries select the few open rows by index (states IN …), never
    every finished one."""
    # correlate(None): inside the DELETE of runs, "runs" in a subquery is its own table.
    open_runs = select(Run.id).where(Run.status.in_(_RUN_OPEN)).correlate(None)
    open_children_of = (
        select(Run.parent_run_id)
        .where(Run.status.in_(_RUN_OPEN), Run.parent_run_id.is_not(None))
        .correlate(None)
    )
    busy = select(Step.run_id).where(Step.status.in_(list(states.STEP_OPEN))).correlate(None)
    return and_(
        Run.status.in_(list(states.RUN_FINAL)),
        or_(Run.parent_run_id.is_(None), Run.parent_run_id.not_in(open_runs)),
        Run.id.not_in(open_children_of),
        Run.id.not_in(busy),
    )


_RUN_OPEN = [s for s in states.RUN_STATES if s not in states.RUN_FINAL]


def count(db: Database, cutoffs: Cutoffs) -> Counts:
    """What a pass would delete now, per table (nothing is changed)."""
    found = Counts()
    with db.read() as conn:
        if cutoffs.runs is not None:
            old = select(Run.id).where(_old_runs(cutoffs.runs)).scalar_subquery()
            found.add("runs", _n(conn, select(func.count()).where(_old_runs(cutoffs.runs))))
            steps = select(func.count(Step.id)).where(Step.run_id.in_(old))
            events = select(func.count(RunEvent.id)).where(RunEvent.run_id.in_(old))
            found.add("steps", _n(conn, steps))
            found.add("run_events", _n(conn, events))
        for table, model, column in _LOGS:
            cutoff = getattr(cutoffs, table)
            if cutoff is not None:
                found.add(table, _n(conn, select(func.count(model.id)).where(column < cutoff)))
    return found


def _n(conn: Connection, statement: Any) -> int:
    return int(conn.execute(statement).scalar_one())


_LOGS = (
    ("audit_log", AuditEntry, AuditEntry.at),
    ("security_events", SecurityEvent, SecurityEvent.at),
    ("script_executions", ScriptExecution, ScriptExecution.started_at),
)


def run(
    db: Database,
    cutoffs: Cutoffs,
    *,
    batch_size: int,
    seconds: float | None = None,
    progress: Callable[[str, int], None] | None = None,
    actor: tuple[str, str | None] = ("system", None),
) -> Counts:
    """Delete what is old, one batch per transaction, until nothing is left (or ``seconds``
    have passed: then ``done`` is False and the rest goes at the next pass). ``progress`` hears
    (table, rows) after each batch. The counts are added to ``awe_retention_deleted_total`` and,
    when anything went (even if a batch then failed), written to the audit log under
    ``actor`` (type, id)."""
    deleted = Counts()
    deadline = None if seconds is None else time.monotonic() + seconds
    batches: list[tuple[str, Callable[[Connection], dict[str, int]]]] = []
    if cutoffs.runs is not None:
        batches.append(("runs", _runs_batch(cutoffs.runs, batch_size)))
    for table, model, column in _LOGS:
        cutoff = getattr(cutoffs, table)
        if cutoff is not None:
            batches.append((table, _log_batch(model, column, cutoff, batch_size)))
    try:
        for table, batch in batches:
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    deleted.done = False
                    break
                with db.write() as conn:
                    went = batch(conn)
                    for name, n in went.items():
                        if n:
                            counter = metrics.RETENTION_DELETED.labels(name)
                            metrics.after_commit(conn, functools.partial(counter.inc, n))
                for name, n in went.items():
                    deleted.add(name, n)
                    if progress is not None and n:
                        progress(name, n)
                if went[table] < batch_size:
                    break
            if not deleted.done:
                break
    finally:
        if deleted.total:
            with db.write() as conn:
                conn.execute(
                    insert(AuditEntry).values(
                        at=utcnow(),
                        actor_type=actor[0],
                        actor_id=actor[1],
                        action="retention.run",
                        target_type="retention",
                        details={"deleted": {k: v for k, v in deleted.rows.items() if v}},
                    )
                )
    return deleted


def _runs_batch(cutoff: datetime, size: int) -> Callable[[Connection], dict[str, int]]:
    def batch(conn: Connection) -> dict[str, int]:
        chosen = select(Run.id).where(_old_runs(cutoff)).order_by(Run.finished_at).limit(size)
        if conn.dialect.name == "postgresql":
            # A run someone holds (resuming it, recording a late result) is left for later.
            chosen = chosen.with_for_update(skip_locked=True)
        ids = list(conn.execute(chosen).scalars())
        if not ids:
            return {"runs": 0, "steps": 0, "run_events": 0}
        steps = _per_run(conn, Step.run_id, Step.id, ids)
        events = _per_run(conn, RunEvent.run_id, RunEvent.id, ids)
        # The condition again, in the DELETE: a child resumed since the SELECT's snapshot keeps
        # its parent. Steps and events go by the foreign keys' ON DELETE CASCADE.
        gone = list(
            conn.execute(
                delete(Run).where(Run.id.in_(ids), _old_runs(cutoff)).returning(Run.id)
            ).scalars()
        )
        return {
            "runs": len(gone),
            "steps": sum(steps.get(i, 0) for i in gone),
            "run_events": sum(events.get(i, 0) for i in gone),
        }

    return batch


def _per_run(conn: Connection, key: Any, counted: Any, ids: list[str]) -> dict[str, int]:
    rows = conn.execute(select(key, func.count(counted)).where(key.in_(ids)).group_by(key))
    return {run_id: int(n) for run_id, n in rows}


def _log_batch(
    model: Any, column: Any, cutoff: datetime, size: int
) -> Callable[[Connection], dict[str, int]]:
    table = model.__tablename__

    def batch(conn: Connection) -> dict[str, int]:
        ids = list(
            conn.execute(
                select(model.id).where(column < cutoff).order_by(model.id).limit(size)
            ).scalars()
        )
        went = conn.execute(delete(model).where(model.id.in_(ids))).rowcount if ids else 0
        return {table: went}

    return batch
