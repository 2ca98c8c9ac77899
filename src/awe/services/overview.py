"""What the home page and the queues page show, scoped to what the principal may see: runs by
state, backlog, dead letters, workers and the steps they hold, queues nobody serves."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from awe.engine import states
from awe.engine.client import Engine
from awe.engine.records import RunRecord, WorkerRecord
from awe.services import runs as run_service
from awe.services.projects import visible_ids
from awe.services.queues import QueueStats, queue_stats
from awe.services.tokens import Principal
from awe.storage.database import Database
from awe.storage.engine_models import Run, Step


@dataclass(frozen=True)
class Overview:
    """The state of the runs one principal may see."""

    runs: dict[str, int]
    dead: int
    queues: list[QueueStats]
    workers: list[WorkerRecord]
    #: Queues with ready steps that no live worker serves.
    unserved: list[str]
    recent_failures: list[RunRecord]
    #: Workers running and heartbeating (the list itself is for admins).
    live_workers: int = 0
    #: Steps each worker holds (running), by worker id.
    held: dict[str, int] = field(default_factory=dict)

    @property
    def backlog(self) -> int:
        """Ready steps, all queues."""
        return sum(q.ready for q in self.queues)

    @property
    def oldest_ready_seconds(self) -> float | None:
        """How long the oldest ready step has waited."""
        ages = [q.oldest_ready_age_seconds for q in self.queues if q.oldest_ready_age_seconds]
        return max(ages, default=None)


def overview(db: Database, principal: Principal, *, failures: int = 5) -> Overview:
    """Counts, queues, workers and recent failures within the principal's projects."""
    allowed = visible_ids(db, principal)
    run_scope = [] if allowed is None else [Run.project_id.in_(sorted(allowed))]
    with db.read() as conn:
        by_state = conn.execute(
            select(Run.status, func.count()).where(*run_scope).group_by(Run.status)
        ).all()
        dead_query = select(func.count()).select_from(Step).where(Step.status == states.DEAD)
        if allowed is not None:
            dead_query = dead_query.where(
                Step.run_id.in_(select(Run.id).where(Run.project_id.in_(sorted(allowed))))
            )
        dead = int(conn.execute(dead_query).scalar_one())
        held = dict(
            conn.execute(
                select(Step.lease_owner, func.count())
                .where(Step.status == states.RUNNING, Step.lease_owner.is_not(None))
                .group_by(Step.lease_owner)
            ).all()
        )
    queues = queue_stats(db, project_ids=allowed)
    workers = Engine(db).list_workers()
    served = {q for w in workers if w.status == "running" for q in w.queues}
    unserved = [q.name for q in queues if q.ready and q.name not in served]
    where = run_service.run_filter(db, principal, statuses=[states.RUN_FAILED])
    recent, _ = run_service.page(db, where, limit=failures)
    return Overview(
        runs={str(k): int(v) for k, v in by_state},
        dead=dead,
        queues=queues,
        workers=workers if principal.is_admin else [],
        unserved=unserved,
        recent_failures=recent,
        live_workers=sum(1 for w in workers if w.status == "running"),
        held={str(k): int(v) for k, v in held.items()} if principal.is_admin else {},
    )
