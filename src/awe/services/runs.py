"""Runs as users reach them: started from stored workflows in their projects, seen only there.

Every state change is audited. A run outside the principal's projects is "not found".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from awe.core.errors import AweError, NotFound, ValidationFailed
from awe.engine import listing, states
from awe.engine.client import Engine
from awe.engine.listing import DeadLetterFilter, RunFilter
from awe.engine.records import EventRecord, RunRecord, StepRecord
from awe.engine.spec import downstream_of
from awe.services import audit, workflows
from awe.services.audit import Actor
from awe.services.projects import ProjectInfo, visible_ids
from awe.services.tokens import Principal
from awe.storage.database import Database
from awe.storage.engine_models import Run

#: The most runs one bulk action changes.
MAX_BULK = 10_000


def visible_run(db: Database, principal: Principal, run_id: str) -> RunRecord:
    """The run, if it belongs to one of the principal's projects (admins: any run)."""
    try:
        run = Engine(db).get_run(run_id)
    except NotFound:
        raise NotFound(f"no run {run_id}") from None
    allowed = visible_ids(db, principal)
    if allowed is not None and run.project_id not in allowed:
        raise NotFound(f"no run {run_id}")
    return run


def start(
    db: Database,
    project: ProjectInfo,
    *,
    workflow: str,
    version: int | None,
    inputs: dict[str, Any],
    idempotency_key: str | None,
    dry_run: bool,
    actor: Actor,
) -> str:
    """Start a run of a stored workflow of the project (an idempotency key returns the first).

    The run has the privileges of whoever pushed the version, not of who starts it: an admin's
    workflow started by a member may use privileged kinds; a member's, started by an admin, may
    not (PermissionDenied when it uses one members may no longer use).
    """
    stored = workflows.get(db, workflow, version=version, project=project.name)
    key = f"{project.id}:{idempotency_key}" if idempotency_key else None  # keys per project
    run_id = Engine(db).submit(
        stored.spec,
        inputs,
        idempotency_key=key,
        project_id=project.id,
        workflow_version=stored.version,
        trace_id=actor.trace_id,
        dry_run=dry_run,
        trusted=stored.trusted,
    )
    _audit(
        db,
        actor,
        "run.start",
        run_id,
        project.id,
        {"workflow": workflow, "version": stored.version},
    )
    return run_id


def start_many(
    db: Database,
    project: ProjectInfo,
    *,
    workflow: str,
    version: int | None,
    runs: list[tuple[dict[str, Any], str | None]],
    dry_run: bool,
    actor: Actor,
) -> list[str]:
    """Start a run of a stored workflow for each (inputs, idempotency key), in one transaction;
    their ids in order. As :func:`start`, with every run's inputs checked before any starts;
    each run it creates gets its own ``run.start`` audit entry, written in the transaction
    that creates the runs (a key that names an earlier run starts nothing, and audits nothing).
    """
    stored = workflows.get(db, workflow, version=version, project=project.name)
    keys = [f"{project.id}:{key}" if key else None for _, key in runs]
    details = {"workflow": workflow, "version": stored.version, "batch": len(runs)}

    def audited(conn: Connection, created: list[str]) -> None:
        audit.record_many(
            conn,
            actor,
            "run.start",
            [
                {"target_type": "run", "target_id": r, "project_id": project.id, "details": details}
                for r in created
            ],
        )

    return Engine(db).submit_many(
        stored.spec,
        [inputs for inputs, _ in runs],
        idempotency_keys=keys,
        project_id=project.id,
        workflow_version=stored.version,
        trace_id=actor.trace_id,
        dry_run=dry_run,
        trusted=stored.trusted,
        on_created=audited,
    )


def run_filter(
    db: Database,
    principal: Principal,
    *,
    project: ProjectInfo | None = None,
    statuses: Collection[str] = (),
    workflow: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> RunFilter:
    """A filter over the runs the principal may see (ValidationFailed for an unknown status)."""
    allowed = visible_ids(db, principal)
    return RunFilter(
        statuses=frozenset(statuses),
        workflow=workflow or None,
        project_id=project.id if project else None,
        project_ids=frozenset(allowed) if allowed is not None else None,
        created_after=as_utc(created_after),
        created_before=as_utc(created_before),
    )


def as_utc(moment: datetime | None) -> datetime | None:
    """A time that says no zone is read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def list_runs(
    db: Database,
    principal: Principal,
    *,
    project: ProjectInfo | None = None,
    status: str | None = None,
    workflow: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[RunRecord]:
    """Runs the principal may see, newest first."""
    where = run_filter(
        db, principal, project=project, statuses=[status] if status else [], workflow=workflow
    )
    return listing.list_runs(db, where, limit=limit, before=before)


def page(
    db: Database, where: RunFilter, *, limit: int = 50, before: str | None = None
) -> tuple[list[RunRecord], dict[str, dict[str, int]]]:
    """A page of runs newest first, with each run's step counts by state."""
    found = listing.list_runs(db, where, limit=limit, before=before)
    return found, listing.step_counts(db, [r.id for r in found])


def count(db: Database, where: RunFilter) -> int:
    """How many runs match (what a bulk action on the filter would act on, at most)."""
    return listing.count_runs(db, where)


@dataclass(frozen=True)
class Bulk:
    """What a bulk action did: the runs it changed, and why it left the others."""

    done: list[str]
    skipped: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"done": self.done, "skipped": self.skipped}


def _chosen(
    db: Database, principal: Principal, run_ids: list[str] | None, where: RunFilter | None
) -> list[str]:
    if (run_ids is None) == (where is None):
        raise ValidationFailed("give run ids or a filter, not both")
    if run_ids is not None:
        if len(run_ids) > MAX_BULK:
            raise ValidationFailed(f"at most {MAX_BULK} runs at once")
        for run_id in run_ids:
            visible_run(db, principal, run_id)  # every one must be visible
        return list(dict.fromkeys(run_ids))
    assert where is not None
    return listing.run_ids(db, where, limit=MAX_BULK)


def cancel(db: Database, principal: Principal, run_id: str, *, actor: Actor) -> RunRecord:
    """Cancel a visible run."""
    run = visible_run(db, principal, run_id)
    result = Engine(db).cancel(run.id)
    _audit(db, actor, "run.cancel", run.id, run.project_id)
    return result


def cancel_many(
    db: Database,
    principal: Principal,
    *,
    run_ids: list[str] | None = None,
    where: RunFilter | None = None,
    actor: Actor,
) -> Bulk:
    """Cancel runs by id (each must be visible) or every visible one a filter matches (at most
    MAX_BULK); runs that finished already are skipped and said so."""
    done: list[str] = []
    skipped: dict[str, str] = {}
    for run_id in _chosen(db, principal, run_ids, where):
        try:
            cancel(db, principal, run_id, actor=actor)
        except AweError as exc:  # finished meanwhile, or refused: said, and the rest go on
            skipped[run_id] = exc.message
        else:
            done.append(run_id)
    return Bulk(done, skipped)


def resume(db: Database, principal: Principal, run_id: str, *, actor: Actor) -> list[str]:
    """Resume a visible run from its dead and cancelled steps."""
    run = visible_run(db, principal, run_id)
    steps = Engine(db).resume(run.id)
    _audit(db, actor, "run.resume", run.id, run.project_id, {"steps": steps})
    return steps


def resume_many(
    db: Database,
    principal: Principal,
    *,
    run_ids: list[str] | None = None,
    where: RunFilter | None = None,
    actor: Actor,
) -> Bulk:
    """Resume runs by id or by filter, like ``cancel_many``; runs with nothing to resume are
    skipped and said so."""
    done: list[str] = []
    skipped: dict[str, str] = {}
    for run_id in _chosen(db, principal, run_ids, where):
        try:
            resume(db, principal, run_id, actor=actor)
        except AweError as exc:
            skipped[run_id] = exc.message
        else:
            done.append(run_id)
    return Bulk(done, skipped)


def fork(db: Database, principal: Principal, run_id: str, from_step: str, *, actor: Actor) -> str:
    """Fork a visible run from one of its steps."""
    run = visible_run(db, principal, run_id)
    new_id = Engine(db).fork(run.id, from_step)
    _audit(
        db, actor, "run.fork", new_id, run.project_id, {"from_run": run.id, "from_step": from_step}
    )
    return new_id


def events(
    db: Database,
    principal: Principal,
    run_id: str,
    *,
    after: int = 0,
    limit: int = 1000,
    steps: Collection[str] = (),
    types: Collection[str] = (),
    levels: Collection[str] = (),
    newest: bool = False,
) -> list[EventRecord]:
    """A visible run's events after ``after``, of the given steps, types and levels if any
    (``newest``: the last ``limit`` of them)."""
    check_visible(db, principal, run_id)
    return listing.events(
        db,
        run_id,
        after=after,
        limit=limit,
        steps=steps,
        types=types,
        levels=levels,
        newest=newest,
    )


def check_visible(db: Database, principal: Principal, run_id: str) -> None:
    """NotFound unless the run is one the principal may see (one indexed read: no steps)."""
    with db.read() as conn:
        row = conn.execute(select(Run.project_id).where(Run.id == run_id)).first()
    allowed = visible_ids(db, principal)
    if row is None or (allowed is not None and row.project_id not in allowed):
        raise NotFound(f"no run {run_id}")


#: ``events`` for a caller that checked the run is visible (a page that read the run, a live
#: stream, which checks again every few seconds).
events_of = listing.events


def status_of(db: Database, run_id: str) -> str:
    """A run's status alone (one indexed read), for a caller that checked it is visible."""
    return Engine(db).status(run_id)


def child_runs(db: Database, principal: Principal, run_id: str) -> dict[str, RunRecord]:
    """The newest child run of each workflow step of a visible run, by step key."""
    return children_of(db, visible_run(db, principal, run_id))


def children_of(db: Database, run: RunRecord) -> dict[str, RunRecord]:
    """The newest child run of each workflow step of ``run`` (read as visible), by step key."""
    return Engine(db).child_runs(run.id)


def fork_plan(run: RunRecord, from_step: str) -> tuple[list[str], list[str]]:
    """What forking ``run`` from ``from_step`` does: (steps whose outputs are reused, steps
    that run again), in the workflow's order."""
    keys = {s.step_key: s for s in run.steps}
    if from_step not in keys:
        raise NotFound(f"run {run.id} has no step {from_step!r}")
    again = downstream_of({from_step}, {k: s.needs for k, s in keys.items()})
    reused = [k for k, s in keys.items() if k not in again and s.status == states.SUCCEEDED]
    return reused, [k for k in keys if k not in reused]


def dead_letters(
    db: Database,
    principal: Principal,
    *,
    queue: str | None = None,
    category: str | None = None,
    workflow: str | None = None,
    older_than_seconds: float | None = None,
) -> list[StepRecord]:
    """Dead steps of the runs the principal may see."""
    return Engine(db).dead_letters(
        dead_filter(db, principal, queue, category, workflow, older_than_seconds)
    )


def requeue(
    db: Database,
    principal: Principal,
    *,
    step_ids: list[str] | None,
    queue: str | None = None,
    category: str | None = None,
    workflow: str | None = None,
    older_than_seconds: float | None = None,
    died_before: datetime | None = None,
    actor: Actor,
) -> list[str]:
    """Requeue dead steps by id (each must be visible) or by filter (within what is visible;
    ``died_before``: only those dead by then, the moment a confirmation was shown)."""
    engine = Engine(db)
    where = dead_filter(db, principal, queue, category, workflow, older_than_seconds)
    where = replace(
        where,
        step_ids=frozenset(step_ids) if step_ids is not None else None,
        died_before=as_utc(died_before),
    )
    visible = {s.id: s for s in engine.dead_letters(where, limit=100_000)}
    if step_ids is not None:
        missing = [i for i in step_ids if i not in visible]
        if missing:
            raise NotFound(f"no dead step {', '.join(missing[:5])}")
        chosen = step_ids
    else:
        chosen = list(visible)
    requeued = engine.requeue(chosen) if chosen else []
    audit.record_now(
        db,
        actor,
        "dlq.requeue",
        target_type="steps",
        target_id=f"{len(requeued)} step(s)",
        details={"steps": requeued[:100]},
    )
    return requeued


def dead_filter(
    db: Database,
    principal: Principal,
    queue: str | None,
    category: str | None,
    workflow: str | None,
    older_than_seconds: float | None,
) -> DeadLetterFilter:
    """Which dead steps, within what the principal may see."""
    allowed = visible_ids(db, principal)
    return DeadLetterFilter(
        queue=queue,
        category=category,
        workflow=workflow,
        older_than=timedelta(seconds=older_than_seconds) if older_than_seconds else None,
        project_ids=frozenset(allowed) if allowed is not None else None,
    )


def _audit(
    db: Database,
    actor: Actor,
    action: str,
    run_id: str,
    project_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    audit.record_now(
        db,
        actor,
        action,
        target_type="run",
        target_id=run_id,
        project_id=project_id,
        details=details,
    )
