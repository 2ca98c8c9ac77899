"""Home, the dead-letter queue, and queues and workers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from awe.api.deps import DbDep, MetaDep, actor_of
from awe.api.schemas import MAX_AGE_SECONDS
from awe.core.errors import NotFound, ValidationFailed
from awe.services import dead_letters, overview, schedules
from awe.services import runs as run_service
from awe.web import render
from awe.web.forms import parse_time
from awe.web.session import Checked, Viewer

router = APIRouter(include_in_schema=False)
Text = Annotated[str | None, Query(max_length=100)]
DLQ_PAGE = 50


@router.get("/", response_class=HTMLResponse)
def home(request: Request, viewer: Viewer, db: DbDep) -> HTMLResponse:
    """Counts by state, backlog, dead letters, workers, recent failures, unserved queues."""
    return render.page(request, "home.html", o=overview.overview(db, viewer.principal))


def _minutes(value: str | None) -> float | None:
    if not value:
        return None
    try:
        minutes = float(value)
    except ValueError:
        raise ValidationFailed(f"older than: {value!r} is not a number of minutes") from None
    if not 0 <= minutes * 60 <= MAX_AGE_SECONDS:
        raise ValidationFailed("older than: from 0 to ten years, in minutes")
    return minutes


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters_page(
    request: Request,
    viewer: Viewer,
    db: DbDep,
    category: Text = None,
    queue: Text = None,
    workflow: Text = None,
    older_than: Annotated[str | None, Query(max_length=20)] = None,
    after: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """Dead steps grouped and listed; requeue the selected ones or every match."""
    minutes = _minutes(older_than)
    where = run_service.dead_filter(
        db, viewer.principal, queue, category, workflow, minutes * 60 if minutes else None
    )
    found = dead_letters.page(db, where, limit=DLQ_PAGE + 1, after=after)
    more = len(found) > DLQ_PAGE
    found = found[:DLQ_PAGE]
    filters = {
        "category": category or "",
        "queue": queue or "",
        "workflow": workflow or "",
        "older_than": older_than or "",
    }
    return render.page(
        request,
        "dead_letters.html",
        groups=dead_letters.groups(db, where),
        steps=found,
        filters=filters,
        after=after,
        next_after=dead_letters.cursor(found[-1][0]) if more and found else None,
    )


@router.post("/dead-letters/requeue", response_class=HTMLResponse)
def dead_letters_requeue(
    request: Request,
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    scope: Annotated[str, Form(max_length=10)] = "selected",
    step_ids: Annotated[list[str], Form(max_length=run_service.MAX_BULK)] = [],  # noqa: B006
    category: Annotated[str | None, Form(max_length=100)] = None,
    queue: Annotated[str | None, Form(max_length=100)] = None,
    workflow: Annotated[str | None, Form(max_length=100)] = None,
    older_than: Annotated[str | None, Form(max_length=20)] = None,
    as_of: Annotated[str | None, Form(max_length=40)] = None,
    confirm: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    """Requeue the selected dead steps, or (after a preview of the count) every match that
    was dead when the preview was shown."""
    if scope not in ("selected", "filter"):
        raise ValidationFailed("scope is 'selected' or 'filter'")
    minutes = _minutes(older_than)
    seconds = minutes * 60 if minutes else None
    filters = {
        "category": category or "",
        "queue": queue or "",
        "workflow": workflow or "",
        "older_than": older_than or "",
    }
    if scope == "selected" and not step_ids:
        raise ValidationFailed("no dead step was selected: tick some, or requeue every match")
    if scope == "filter" and confirm != "yes":
        where = run_service.dead_filter(db, viewer.principal, queue, category, workflow, seconds)
        # The preview's moment is the last death it counts: read first, so the count covers
        # exactly the steps dead by then (by the database's times).
        moment = dead_letters.latest_death(db, where) or datetime.now(UTC)
        return render.page(
            request,
            "dead_letters_confirm.html",
            count=dead_letters.count(db, replace(where, died_before=moment)),
            filters=filters,
            as_of=moment.isoformat(timespec="microseconds"),
        )
    done = run_service.requeue(
        db,
        viewer.principal,
        step_ids=step_ids if scope == "selected" else None,
        queue=queue or None,
        category=category or None,
        workflow=workflow or None,
        older_than_seconds=seconds,
        died_before=parse_time(as_of, "as_of") if scope == "filter" else None,
        actor=actor_of(viewer.principal, meta),
    )
    kept = urlencode({k: v for k, v in filters.items() if v})
    return render.redirect(
        "/dead-letters" + (f"?{kept}" if kept else ""), f"{len(done)} step(s) requeued."
    )


@router.get("/queues", response_class=HTMLResponse)
def queues_page(request: Request, viewer: Viewer, db: DbDep) -> HTMLResponse:
    """Queues (ready, waiting retry, running vs limit, oldest ready, rate) and workers."""
    return render.page(request, "queues.html", o=overview.overview(db, viewer.principal))


@router.get("/queues/live", response_class=HTMLResponse)
def queues_live(request: Request, viewer: Viewer, db: DbDep) -> HTMLResponse:
    """The queues page's tables again (its refresh)."""
    return render.page(request, "_queues.html", o=overview.overview(db, viewer.principal))


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, viewer: Viewer, db: DbDep) -> HTMLResponse:
    """Schedules: cron in words and raw, timezone, next and last fire, pause, fire now."""
    found = schedules.list_visible(db, viewer.principal)
    return render.page(
        request,
        "schedules.html",
        schedules=[(s, schedules.describe(s.cron), schedules.last_run(db, s)) for s in found],
    )


@router.post("/schedules/{name:path}/{action}")
def schedule_action(name: str, action: str, viewer: Checked, db: DbDep, meta: MetaDep) -> Response:
    """Pause, resume or fire a schedule; firing goes on to the run it started."""
    schedules.visible(db, viewer.principal, name)
    actor = actor_of(viewer.principal, meta)
    if action == "trigger":
        run_id = schedules.trigger(db, name, actor=actor)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)
    if action not in ("enable", "disable"):
        raise NotFound(f"no schedule action {action!r}")
    schedules.set_enabled(db, name, enabled=action == "enable", actor=actor)
    return RedirectResponse("/schedules", status_code=303)
