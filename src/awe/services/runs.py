"""Runs as users reach them: started from stored workflows in their projects, seen only there.

Every state change is audited. A run outside the principal's projects is "not found".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from awe.core.errors import NotFound
from awe.engine.client import DeadLetterFilter, Engine
from awe.engine.records import EventRecord, RunRecord, StepRecord
from awe.services import audit, workflows
from awe.services.audit import Actor
from awe.services.projects import ProjectInfo, visible_ids
from awe.services.tokens import Principal
from awe.storage.database import Database


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
    allowed = visible_ids(db, principal)
    return Engine(db).list_runs(
        status=status,
        workflow=workflow,
        limit=limit,
        before=before,
        project_id=project.id if project else None,
        project_ids=frozenset(allowed) if allowed is not None else None,
    )


def cancel(db: Database, principal: Principal, run_id: str, *, actor: Actor) -> RunRecord:
    """Cancel a visible run."""
    run = visible_run(db, principal, run_id)
    result = Engine(db).cancel(run.id)
    _audit(db, actor, "run.cancel", run.id, run.project_id)
    return result


def resume(db: Database, principal: Principal, run_id: str, *, actor: Actor) -> list[str]:
    """Resume a visible run from its dead and cancelled steps."""
    run = visible_run(db, principal, run_id)
    steps = Engine(db).resume(run.id)
    _audit(db, actor, "run.resume", run.id, run.project_id, {"steps": steps})
    return steps


def fork(db: Database, principal: Principal, run_id: str, from_step: str, *, actor: Actor) -> str:
    """Fork a visible run from one of its steps."""
    run = visible_run(db, principal, run_id)
    new_id = Engine(db).fork(run.id, from_step)
    _audit(
        db, actor, "run.fork", new_id, run.project_id, {"from_run": run.id, "from_step": from_step}
    )
    return new_id


def events(
    db: Database, principal: Principal, run_id: str, *, after: int = 0, limit: int = 1000
) -> list[EventRecord]:
    """A visible run's events after ``after``."""
    run = visible_run(db, principal, run_id)
    return Engine(db).events(run.id, after=after, limit=limit)


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
        _filter(db, principal, queue, category, workflow, older_than_seconds)
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
    actor: Actor,
) -> list[str]:
    """Requeue dead steps by id (each must be visible) or by filter (within what is visible)."""
    engine = Engine(db)
    where = _filter(db, principal, queue, category, workflow, older_than_seconds)
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


def _filter(
    db: Database,
    principal: Principal,
    queue: str | None,
    category: str | None,
    workflow: str | None,
    older_than_seconds: float | None,
) -> DeadLetterFilter:
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
