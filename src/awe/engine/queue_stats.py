"""Queues and workers as operators see them: depth, age of the oldest ready step, limits
(read by the services, the metrics and ``awe doctor``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from awe.core.clock import utcnow
from awe.engine import states
from awe.engine.client import Engine
from awe.storage.database import Database
from awe.storage.engine_models import Queue, Run, Step


@dataclass(frozen=True)
class QueueStats:
    """One queue right now."""

    name: str
    ready: int
    waiting_retry: int
    running: int
    oldest_ready_age_seconds: float | None
    concurrency_limit: int | None
    rate_per_second: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def queue_stats(db: Database, *, project_ids: set[str] | None = None) -> list[QueueStats]:
    """Every queue that has steps or limits; with ``project_ids``, only the steps of runs in
    those projects are counted, and only queues they use are listed (what a member sees)."""
    now = utcnow()
    scope = [Step.status.in_([states.QUEUED, states.RUNNING])]
    if project_ids is not None:
        mine = select(Run.id).where(Run.project_id.in_(sorted(project_ids)))
        scope.append(Step.run_id.in_(mine))
    with db.read() as conn:
        counted = conn.execute(
            select(
                Step.queue,
                func.sum(
                    case(((Step.status == states.QUEUED) & (Step.run_after <= now), 1), else_=0)
                ),
                func.sum(
                    case(((Step.status == states.QUEUED) & (Step.run_after > now), 1), else_=0)
                ),
                func.sum(case((Step.status == states.RUNNING, 1), else_=0)),
            )
            .where(*scope)
            .group_by(Step.queue)
        ).all()
        oldest = dict(
            conn.execute(
                select(Step.queue, func.min(Step.run_after))
                .where(*scope, Step.status == states.QUEUED, Step.run_after <= now)
                .group_by(Step.queue)
            ).all()
        )
        limits = {r.name: r for r in conn.execute(select(Queue.__table__)).all()}
    listed = set(limits) if project_ids is None else set()
    names = sorted({row[0] for row in counted} | listed)
    by_name = {row[0]: row for row in counted}
    result = []
    for name in names:
        row = by_name.get(name)
        first = oldest.get(name)
        limit = limits.get(name)
        result.append(
            QueueStats(
                name=name,
                ready=int(row[1] or 0) if row else 0,
                waiting_retry=int(row[2] or 0) if row else 0,
                running=int(row[3] or 0) if row else 0,
                oldest_ready_age_seconds=(now - first).total_seconds() if first else None,
                concurrency_limit=limit.concurrency_limit if limit else None,
                rate_per_second=limit.rate_per_second if limit else None,
            )
        )
    return result


def counts(db: Database) -> dict[str, dict[str, int]]:
    """Runs and steps by state."""
    with db.read() as conn:
        runs = dict(conn.execute(select(Run.status, func.count()).group_by(Run.status)).all())
        steps = dict(conn.execute(select(Step.status, func.count()).group_by(Step.status)).all())
    return {
        "runs": {str(k): int(v) for k, v in runs.items()},
        "steps": {str(k): int(v) for k, v in steps.items()},
    }


def live_workers(db: Database) -> int:
    """Workers that are running and heartbeating."""
    return sum(1 for w in Engine(db).list_workers() if w.status == "running")


def governance_stats(db: Database) -> dict[str, Any]:
    """What the API's gauges read besides the queues: the oldest dead letter's death time, the
    last finish and last success per workflow, and documents by state."""
    from awe.storage.knowledge_models import Document

    with db.read() as conn:
        oldest_dead = conn.execute(
            select(func.min(Step.finished_at)).where(Step.status == states.DEAD)
        ).scalar_one()
        finished = conn.execute(
            select(Run.workflow_name, Run.status, func.max(Run.finished_at))
            .where(Run.finished_at.is_not(None))
            .group_by(Run.workflow_name, Run.status)
        ).all()
        documents = dict(
            conn.execute(select(Document.status, func.count()).group_by(Document.status)).all()
        )
    last_run: dict[str, datetime] = {}
    last_success: dict[str, datetime] = {}
    for name, status, at in finished:
        if at is None:
            continue
        if name not in last_run or at > last_run[name]:
            last_run[name] = at
        if status == states.RUN_SUCCEEDED:
            last_success[name] = at
    return {
        "oldest_dead": oldest_dead,
        "last_run": last_run,
        "last_success": last_success,
        "documents": {str(k): int(v) for k, v in documents.items()},
    }
