"""Reading runs in bulk: filters shared by lists, counts and bulk actions, step counts by state
for a page of runs (one aggregate query), and events filtered by step, type and level."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, literal_column, select

from awe.core.errors import ValidationFailed
from awe.engine import states
from awe.engine.records import EventRecord, RunRecord, StepRecord
from awe.engine.spec import did_you_mean
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step

#: A query over steps (of any columns).
_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")
_RUNS = Run.__table__
_STEPS = Step.__table__
_EVENTS = RunEvent.__table__
#: What a list reads of a run: everything but the spec (the biggest column, never shown there).
_LIST_COLUMNS = [c for c in _RUNS.columns if c.name != "spec"]


@dataclass(frozen=True)
class RunFilter:
    """Which runs: every field given must match (statuses: any of them)."""

    statuses: frozenset[str] = field(default_factory=frozenset)
    workflow: str | None = None
    queue: str | None = None
    project_id: str | None = None
    #: Only runs of these projects (None: any project, or none).
    project_ids: frozenset[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def __post_init__(self) -> None:
        for status in self.statuses:
            if status not in states.RUN_STATES:
                raise ValidationFailed(
                    f"run status {status!r} is not one of {', '.join(states.RUN_STATES)}"
                    + did_you_mean(status, states.RUN_STATES)
                )
        if self.created_after and self.created_before and self.created_after > self.created_before:
            raise ValidationFailed("the time range ends before it starts")

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE conditions of this filter."""
        found: list[ColumnElement[bool]] = []
        if self.statuses:
            found.append(Run.status.in_(sorted(self.statuses)))
        for column, value in (
            (Run.workflow_name, self.workflow),
            (Run.queue, self.queue),
            (Run.project_id, self.project_id),
        ):
            if value is not None:
                found.append(column == value)
        if self.project_ids is not None:
            found.append(Run.project_id.in_(sorted(self.project_ids)))
        if self.created_after is not None:
            found.append(Run.created_at >= self.created_after)
        if self.created_before is not None:
            found.append(Run.created_at < self.created_before)
        return found

    def describe(self) -> str:
        """The filter in words, for confirmations ('status failed or cancelled, workflow x')."""
        parts = []
        if self.statuses:
            parts.append("status " + " or ".join(sorted(self.statuses)))
        if self.workflow:
            parts.append(f"workflow {self.workflow}")
        if self.queue:
            parts.append(f"queue {self.queue}")
        if self.created_after:
            parts.append(f"created from {self.created_after.isoformat(timespec='seconds')}")
        if self.created_before:
            parts.append(f"created before {self.created_before.isoformat(timespec='seconds')}")
        return ", ".join(parts) or "every run you may see"


def list_runs(
    db: Database, where: RunFilter, *, limit: int = 50, before: str | None = None
) -> list[RunRecord]:
    """Runs newest first (ids are time-ordered), ``before`` a run id to page from."""
    statement = select(*_LIST_COLUMNS).where(*where.conditions()).order_by(Run.id.desc())
    if before is not None:
        statement = statement.where(Run.id < before)
    with db.read() as conn:
        rows = conn.execute(statement.limit(limit)).all()
    return [RunRecord.from_row({**r._mapping, "spec": {}}, None) for r in rows]


def count_runs(db: Database, where: RunFilter) -> int:
    """How many runs match."""
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(_RUNS).where(*where.conditions())
            ).scalar_one()
        )


def run_ids(db: Database, where: RunFilter, *, limit: int) -> list[str]:
    """The ids of matching runs, oldest first, at most ``limit``."""
    with db.read() as conn:
        found = conn.execute(
            select(Run.id).where(*where.conditions()).order_by(Run.id).limit(limit)
        ).scalars()
        return [str(i) for i in found]


def step_counts(db: Database, ids: Collection[str]) -> dict[str, dict[str, int]]:
    """For each run id, how many of its steps are in each state (one grouped query)."""
    if not ids:
        return {}
    with db.read() as conn:
        rows = conn.execute(
            select(Step.run_id, Step.status, func.count())
            .where(Step.run_id.in_(sorted(ids)))
            .group_by(Step.run_id, Step.status)
        ).all()
    counts: dict[str, dict[str, int]] = {i: {} for i in ids}
    for run_id, status, number in rows:
        counts[run_id][status] = int(number)
    return counts


def events(
    db: Database,
    run_id: str,
    *,
    after: int = 0,
    limit: int = 1000,
    steps: Collection[str] = (),
    types: Collection[str] = (),
    levels: Collection[str] = (),
    newest: bool = False,
) -> list[EventRecord]:
    """A run's events after number ``after``, in order; only those of the given steps, types
    and levels when any are given; ``newest``: the last ``limit`` of them (still in order)."""
    conditions: list[Any] = [RunEvent.run_id == run_id, RunEvent.seq > after]
    if steps:
        conditions.append(RunEvent.step_key.in_(sorted(steps)))
    if types:
        conditions.append(RunEvent.type.in_(sorted(types)))
    if levels:
        conditions.append(RunEvent.level.in_(sorted(levels)))
    order = RunEvent.seq.desc() if newest else RunEvent.seq
    with db.read() as conn:
        rows = conn.execute(select(_EVENTS).where(*conditions).order_by(order).limit(limit)).all()
    found = [EventRecord.from_row(r._mapping) for r in rows]
    return found[::-1] if newest else found


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead steps to select; every field given must match."""

    queue: str | None = None
    category: str | None = None
    workflow: str | None = None
    older_than: timedelta | None = None
    run_id: str | None = None
    #: Only steps of runs in these projects (None: any run).
    project_ids: frozenset[str] | None = None
    #: Only these steps (None: any).
    step_ids: frozenset[str] | None = None
    #: Only steps that died at or before this time (a confirmation's moment).
    died_before: datetime | None = None

    def conditions(self, now: datetime) -> list[ColumnElement[bool]]:
        """The WHERE conditions (over steps joined with their runs)."""
        # Written out, not bound: PostgreSQL uses the partial index ix_steps_dead only for a
        # WHERE it can match to the index's own (a bound value is not known when planning).
        found: list[ColumnElement[bool]] = [Step.status == literal_column(f"'{states.DEAD}'")]
        if self.queue:
            found.append(Step.queue == self.queue)
        if self.category:
            found.append(Step.error_category == self.category)
        if self.workflow:
            found.append(Step.workflow_name == self.workflow)
        if self.run_id:
            found.append(Step.run_id == self.run_id)
        if self.project_ids is not None:
            found.append(Run.project_id.in_(sorted(self.project_ids)))
        if self.older_than is not None:
            found.append(Step.finished_at <= now - self.older_than)
        if self.step_ids is not None:
            found.append(Step.id.in_(sorted(self.step_ids)))
        if self.died_before is not None:
            found.append(Step.finished_at <= self.died_before)
        return found

    def over(self, statement: _Query) -> _Query:
        """``statement`` (over steps) joined with the runs only when a condition needs them:
        joining every dead step to its run costs more than the rest of a page."""
        if self.project_ids is None:
            return statement
        return statement.join(Run, Run.id == Step.run_id)


def dead_letters(
    db: Database,
    where: DeadLetterFilter,
    now: datetime,
    *,
    limit: int = 1000,
    after: tuple[datetime, str] | None = None,
) -> list[tuple[StepRecord, str]]:
    """Dead steps oldest death first, each with its run's workflow; ``after`` (a death time
    and a step id) is where the page before ended."""
    statement = (
        where.over(select(_STEPS).select_from(Step))
        .where(*where.conditions(now))
        .order_by(Step.finished_at, Step.id)
        .limit(limit)
    )
    if after is not None:
        at, step_id = after
        statement = statement.where(
            (Step.finished_at > at) | ((Step.finished_at == at) & (Step.id > step_id))
        )
    with db.read() as conn:
        rows = conn.execute(statement).all()
    return [(StepRecord.from_row(r._mapping), str(r.workflow_name)) for r in rows]


def latest_death(db: Database, where: DeadLetterFilter, now: datetime) -> datetime | None:
    """The latest death time among the matching dead steps."""
    with db.read() as conn:
        found = conn.execute(
            where.over(select(func.max(Step.finished_at)).select_from(Step)).where(
                *where.conditions(now)
            )
        ).scalar()
    if found is None:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def dead_letter_groups(
    db: Database, where: DeadLetterFilter, now: datetime
) -> list[tuple[str, str, str, int]]:
    """How many dead steps there are by (category, queue, workflow), most first."""
    number = func.count().label("n")
    with db.read() as conn:
        rows = conn.execute(
            where.over(
                select(Step.error_category, Step.queue, Step.workflow_name, number).select_from(
                    Step
                )
            )
            .where(*where.conditions(now))
            .group_by(Step.error_category, Step.queue, Step.workflow_name)
            .order_by(number.desc())
        ).all()
    return [(str(c or "unknown"), str(q), str(w), int(n)) for c, q, w, n in rows]
