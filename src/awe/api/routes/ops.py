"""Operations: queues and workers, schedules, the audit log and security events, users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from awe.api.deps import AdminPrincipal, CurrentPrincipal, DbDep, MetaDep, actor_of
from awe.api.schemas import (
    AdminUserCreate,
    QueuePublic,
    RunStarted,
    SchedulePublic,
    UserPublic,
    UserUpdate,
    WorkerPublic,
)
from awe.engine.client import Engine
from awe.services import audit, auth, projects, queues, schedules

router = APIRouter()


@router.get("/queues", response_model=list[QueuePublic], tags=["queues"])
def list_queues(principal: CurrentPrincipal, db: DbDep) -> list[dict[str, Any]]:
    """Each queue: ready steps, steps waiting to retry, running, age of the oldest ready, limits.

    A member sees only the queues their projects' runs use, counting only their steps.
    """
    mine = projects.visible_ids(db, principal)
    return [q.as_dict() for q in queues.queue_stats(db, project_ids=mine)]


@router.get("/workers", response_model=list[WorkerPublic], tags=["queues"])
def list_workers(
    principal: AdminPrincipal, db: DbDep, all_: Annotated[bool, Query(alias="all")] = False
) -> list[dict[str, Any]]:
    """Registered workers with their last heartbeat ('lost' when it stopped); admins only:
    hosts and processes are the installation's, not any project's."""
    return [w.as_dict() for w in Engine(db).list_workers(include_stopped=all_)]


def _visible_schedule(db: Any, principal: Any, name: str) -> schedules.ScheduleInfo:
    return schedules.visible(db, principal, name)


@router.get("/schedules", response_model=list[SchedulePublic], tags=["schedules"])
def list_schedules(principal: CurrentPrincipal, db: DbDep) -> list[dict[str, Any]]:
    """The schedules of your projects (admins: all)."""
    return [s.as_dict() for s in schedules.list_visible(db, principal)]


@router.post("/schedules/{name:path}/enable", response_model=SchedulePublic, tags=["schedules"])
def enable_schedule(
    name: str, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, Any]:
    """Resume a schedule at its next cron time."""
    _visible_schedule(db, principal, name)
    schedules.set_enabled(db, name, enabled=True, actor=actor_of(principal, meta))
    return _visible_schedule(db, principal, name).as_dict()


@router.post("/schedules/{name:path}/disable", response_model=SchedulePublic, tags=["schedules"])
def disable_schedule(
    name: str, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, Any]:
    """Pause a schedule."""
    _visible_schedule(db, principal, name)
    schedules.set_enabled(db, name, enabled=False, actor=actor_of(principal, meta))
    return _visible_schedule(db, principal, name).as_dict()


@router.post(
    "/schedules/{name:path}/trigger",
    status_code=status.HTTP_201_CREATED,
    response_model=RunStarted,
    tags=["schedules"],
)
def trigger_schedule(
    name: str, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, Any]:
    """Fire a schedule now, outside its cron."""
    _visible_schedule(db, principal, name)
    return {"run_id": schedules.trigger(db, name, actor=actor_of(principal, meta))}


@router.get("/audit", tags=["admin"])
def audit_log(
    principal: AdminPrincipal,
    db: DbDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor_id: Annotated[str | None, Query(max_length=36)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The audit log, newest first (admins)."""
    return audit.list_audit(db, action=action, actor_id=actor_id, since=since, limit=limit)


@router.get("/security-events", tags=["admin"])
def security_events(
    principal: AdminPrincipal,
    db: DbDep,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Authentication failures, lockouts and token misuse, newest first (admins)."""
    return audit.list_security_events(db, kind=kind, since=since, limit=limit)


@router.get("/users", response_model=list[UserPublic], tags=["admin"])
def list_users(principal: AdminPrincipal, db: DbDep) -> list[dict[str, Any]]:
    """Every user (admins)."""
    return [u.as_dict() for u in auth.list_users(db)]


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic, tags=["admin"]
)
def create_user(
    body: AdminUserCreate, principal: AdminPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, Any]:
    """Create a user with a role (admins), whether or not registration is open."""
    user = auth.create_user(
        db,
        email=body.email,
        password=body.password,
        role=body.role,
        display_name=body.display_name,
        actor=actor_of(principal, meta),
    )
    return user.as_dict()


@router.patch("/users/{user_id}", response_model=UserPublic, tags=["admin"])
def update_user(
    user_id: str, body: UserUpdate, principal: AdminPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, Any]:
    """Change a user's role, or deactivate them (their sessions end at once); the last active
    admin stays one (409)."""
    user = auth.update_user(
        db, user_id, role=body.role, is_active=body.is_active, actor=actor_of(principal, meta)
    )
    return user.as_dict()
