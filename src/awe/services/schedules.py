"""Schedules: a stored workflow with ``schedule:`` fires on its cron; list, pause, resume, fire.

Pushing a version with ``schedule:`` creates or updates the workflow's schedule, which then runs
that version; pushing a version without one removes it. A schedule is named after its workflow
(``project/name`` inside a project).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cron_descriptor import get_description
from sqlalchemy import delete, select

from awe.core.errors import NotFound
from awe.engine.client import Engine
from awe.engine.scheduler import Scheduler
from awe.services import audit
from awe.services.audit import Actor
from awe.services.projects import visible_ids
from awe.services.tokens import Principal
from awe.storage.database import Database
from awe.storage.engine_models import Run, Schedule


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule, as listed."""

    id: str
    name: str
    workflow: str
    workflow_version: int | None
    project_id: str | None
    cron: str
    timezone: str
    enabled: bool
    next_fire_at: datetime
    last_fire_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = dict(self.__dict__)
        data["next_fire_at"] = self.next_fire_at.isoformat()
        data["last_fire_at"] = self.last_fire_at.isoformat() if self.last_fire_at else None
        return data


def schedule_name(workflow: str, project: str | None) -> str:
    """The schedule name of a stored workflow."""
    return f"{project}/{workflow}" if project else workflow


def sync_workflow(
    db: Database,
    *,
    spec: dict[str, Any],
    version: int,
    project: str | None,
    project_id: str | None,
    trusted: bool = True,
    enabled: bool = True,
) -> str | None:
    """Make the workflow's schedule match ``spec`` (created, updated or removed); its id.
    ``enabled``: whether a schedule this creates starts enabled (an existing one keeps its state).

    ``trusted``: the version's pusher was an admin or the operator (its runs may use privileged
    kinds); a member's schedule fires as that member would start it.
    """
    name = schedule_name(spec["name"], project)
    if not spec.get("schedule"):
        with db.write() as conn:
            conn.execute(
                delete(Schedule).where(
                    Schedule.name == name, Schedule.workflow_version.is_not(None)
                )
            )
        return None
    return Scheduler(db).create(
        name=name,
        spec=spec,
        cron=str(spec["schedule"]),
        timezone=str(spec.get("timezone") or "UTC"),
        workflow_version=version,
        project_id=project_id,
        trusted=trusted,
        enabled=enabled,
    )


def list_schedules(db: Database) -> list[ScheduleInfo]:
    """Every schedule, by name."""
    with db.read() as conn:
        rows = conn.execute(
            select(
                Schedule.id,
                Schedule.name,
                Schedule.spec,
                Schedule.workflow_version,
                Schedule.project_id,
                Schedule.cron,
                Schedule.timezone,
                Schedule.enabled,
                Schedule.next_fire_at,
                Schedule.last_fire_at,
            ).order_by(Schedule.name)
        ).all()
    return [
        ScheduleInfo(
            id=r.id,
            name=r.name,
            workflow=r.spec["name"],
            workflow_version=r.workflow_version,
            project_id=r.project_id,
            cron=r.cron,
            timezone=r.timezone,
            enabled=r.enabled,
            next_fire_at=r.next_fire_at,
            last_fire_at=r.last_fire_at,
        )
        for r in rows
    ]


def _find(db: Database, name: str) -> Any:
    with db.read() as conn:
        row = conn.execute(
            select(
                Schedule.id,
                Schedule.spec,
                Schedule.inputs,
                Schedule.workflow_version,
                Schedule.project_id,
                Schedule.trusted,
            ).where(Schedule.name == name)
        ).first()
    if row is None:
        raise NotFound(f"no schedule {name!r} (awe schedules list shows them)")
    return row


def set_enabled(db: Database, name: str, *, enabled: bool, actor: Actor) -> None:
    """Pause or resume a schedule by name (resumed, it fires at its next cron time)."""
    row = _find(db, name)
    Scheduler(db).set_enabled(row.id, enabled)
    audit.record_now(
        db,
        actor,
        "schedule.enable" if enabled else "schedule.disable",
        target_type="schedule",
        target_id=name,
        project_id=row.project_id,
    )


def trigger(db: Database, name: str, *, actor: Actor) -> str:
    """Fire a schedule now, outside its cron; returns the run id."""
    row = _find(db, name)
    run_id = Engine(db).submit(
        row.spec,
        row.inputs,
        workflow_version=row.workflow_version,
        project_id=row.project_id,
        trusted=bool(row.trusted),
        trace_id=actor.trace_id,
    )
    audit.record_now(
        db,
        actor,
        "schedule.trigger",
        target_type="schedule",
        target_id=name,
        project_id=row.project_id,
        details={"run_id": run_id},
    )
    return run_id


def list_visible(db: Database, principal: Principal) -> list[ScheduleInfo]:
    """The schedules of the principal's projects (admins: all), by name."""
    allowed = visible_ids(db, principal)
    return [s for s in list_schedules(db) if allowed is None or s.project_id in allowed]


def visible(db: Database, principal: Principal, name: str) -> ScheduleInfo:
    """One schedule of the principal's projects; NotFound otherwise."""
    for schedule in list_visible(db, principal):
        if schedule.name == name:
            return schedule
    raise NotFound(f"no schedule {name!r}")


def last_run(db: Database, schedule: ScheduleInfo) -> str | None:
    """The id of the run its last fire started (None if it has not fired, or that run is
    gone)."""
    if schedule.last_fire_at is None:
        return None
    key = f"schedule:{schedule.id}:{schedule.last_fire_at.isoformat()}"
    with db.read() as conn:
        found = conn.execute(select(Run.id).where(Run.idempotency_key == key)).scalar()
    return str(found) if found else None


def describe(cron: str) -> str:
    """A cron expression in words ('At 09:00 AM, Monday through Friday'); the expression
    itself when it cannot be put in words."""
    try:
        return str(get_description(cron))
    except Exception:  # noqa: BLE001 (any expression it cannot read is shown raw)
        return cron
