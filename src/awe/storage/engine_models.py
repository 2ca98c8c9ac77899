"""The engine's tables: runs and steps (the queue), events, workers, queues, schedules, leases.

A step row is the queue item; ``steps.status`` with ``run_after`` and the lease columns is the
whole queue state, so nothing lives only in a worker's memory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from awe.core.clock import utcnow
from awe.core.ids import new_id
from awe.storage.models import ID_LENGTH, Base
from awe.storage.privacy import CleanText, SealedJSON, SealedText
from awe.storage.types import UTCDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
EventId = BigInteger().with_variant(Integer, "sqlite")


class Run(Base):
    """One execution of a workflow spec, pinned at submit time."""

    __tablename__ = "runs"
    # By state, then when it ended: the queue's state counts, and retention's oldest-first.
    __table_args__ = (Index("ix_runs_status_finished_at", "status", "finished_at"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    project_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    workflow_name: Mapped[str] = mapped_column(String(100), index=True)
    workflow_version: Mapped[int | None] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(SealedJSON("runs.spec"))
    inputs: Mapped[dict[str, Any]] = mapped_column(SealedJSON("runs.inputs"))
    outputs: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON("runs.outputs"))
    status: Mapped[str] = mapped_column(String(16))
    #: May use privileged kinds: its workflow was pushed by an admin or the operator.
    #: See engine/permissions.py.
    trusted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: How many workflow steps it is nested in (0 for a run started directly).
    depth: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The last sequence number given to one of its events (see engine/events.py).
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    #: The run this one came from: the run it was forked from, or the parent of a child run.
    parent_run_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    #: For a child run (a ``kind: workflow`` step), the parent's step that waits for it.
    parent_step_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    forked_from_step: Mapped[str | None] = mapped_column(String(100))
    trace_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(CleanText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Step(Base):
    """One node of a run's DAG, and the queue item that gets it executed."""

    __tablename__ = "steps"
    __table_args__ = (
        UniqueConstraint("run_id", "step_key"),
        Index("ix_steps_lease", "status", "lease_expires_at"),
        # A run's open steps without reading the others: whether it can finish, and which of
        # its pending steps a batch of completions may ready (engine/completion.py).
        Index("ix_steps_run_status", "run_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE")
    )
    step_key: Mapped[str] = mapped_column(String(100))
    #: The run's workflow, copied at insert (a run's workflow never changes): the dead-letter
    #: queue groups and filters by it without joining every dead step to its run.
    workflow_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(100))
    needs: Mapped[list[str]] = mapped_column(JSON)
    #: The step's definition from the spec (with, when, retry, timeout, on_failure…).
    definition: Mapped[dict[str, Any]] = mapped_column(SealedJSON("steps.definition"))
    #: The parameters after templates were resolved, set when the step became ready.
    input: Mapped[Any | None] = mapped_column(SealedJSON("steps.input"))
    #: Drawn when ``input`` was rendered with secret references: only references of that
    #: rendering are honoured (engine/secret_refs.py).
    ref_nonce: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The number of the latest attempt: one more on every claim, never reused or lowered.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    #: Attempts counted against max_attempts since the step was last requeued (a released
    #: lease gives its attempt back).
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    on_failure: Mapped[str] = mapped_column(String(16), default="fail")
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A fresh token per claim: only the holder of the current claim may finish it.
    lease_token: Mapped[str | None] = mapped_column(String(40))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    output: Mapped[Any | None] = mapped_column(SealedJSON("steps.output"))
    error_category: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(CleanText)
    #: Every failed attempt: [{"attempt", "category", "message", "at"}].
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The claim's index, in exactly the claim's order (priority DESC, run_after, id): ready rows come
# off it already sorted. With an all-ascending index SQLite sorted every queued row on each claim,
# so a deep queue made every claim slower.
# The dead-letter queue in its order (death time, id): its pages and counts read the dead steps,
# never the rest of the table. On PostgreSQL it holds dead rows only; SQLite's planner (without
# statistics) would not pick a partial index over ix_steps_lease, so there it holds every row.
Index(
    "ix_steps_dead",
    Step.status,
    Step.finished_at,
    Step.id,
    postgresql_where=Step.status == "dead",
)

Index(
    "ix_steps_claim",
    Step.status,
    Step.queue,
    Step.priority.desc(),
    Step.run_after,
    Step.id,
    # PostgreSQL: queued rows only (the claim's own condition), so finished rows never enter it.
    postgresql_where=Step.status == "queued",
)


class RunEvent(Base):
    """An append-only record of what happened in a run (state changes, logs, progress).

    ``seq`` numbers a run's events in commit order (given under the run's row lock), so a reader
    that follows ``seq`` never skips one; ``id`` is only unique.
    """

    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("runs.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    step_key: Mapped[str | None] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(CleanText, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Worker(Base):
    """A registered worker process and its last heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list[str]] = mapped_column(JSON)
    concurrency: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Queue(Base):
    """Limits of one queue: global concurrency and a token-bucket rate."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)
    #: Steps started per second at most; None for no limit.
    rate_per_second: Mapped[float | None] = mapped_column(Float)
    burst: Mapped[float] = mapped_column(Float, default=1.0)
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Schedule(Base):
    """A cron schedule that creates runs."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(SealedJSON("schedules.spec"))
    inputs: Mapped[dict[str, Any]] = mapped_column(SealedJSON("schedules.inputs"))
    #: Set for the schedule of a stored workflow: the version (and project) its runs pin.
    workflow_version: Mapped[int | None] = mapped_column(Integer)
    #: Its runs may use privileged kinds (the workflow's pusher was an admin or the operator).
    trusted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    project_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("projects.id", ondelete="CASCADE")
    )
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fire_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Lease(Base):
    """A named lease held by one process at a time (the scheduler leader)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Workflow(Base):
    """One immutable version of a stored workflow."""

    __tablename__ = "workflows"
    __table_args__ = (UniqueConstraint("project_key", "name", "version"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    #: The project's id, or '' for workflows outside any project (NULLs would not be unique).
    project_key: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(SealedJSON("workflows.spec"))
    source: Mapped[str] = mapped_column(SealedText("workflows.source"))
    #: Who pushed it (a user id; None for the operator's CLI and the admin token).
    pushed_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    #: Pushed by an admin or the operator: its runs may use privileged kinds.
    trusted: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
