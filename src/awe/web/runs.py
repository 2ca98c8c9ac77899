"""The runs list: filters in the URL, keyset pages, a first page that refreshes itself, and bulk
cancel / resume of the selected runs or of every run matching the filter, after a confirmation
that shows the exact count and the filter it will act on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from awe.api.deps import DbDep, MetaDep, actor_of
from awe.core.errors import ValidationFailed
from awe.engine import states
from awe.services import projects
from awe.services import runs as run_service
from awe.web import render
from awe.web.forms import PAGE_SIZE, RunQuery, parse_time
from awe.web.session import Checked, Viewer

router = APIRouter(include_in_schema=False)
StatusQuery = Annotated[list[str], Query(alias="status", max_length=5)]
Text = Annotated[str | None, Query(max_length=100)]
BULK_ACTIONS = {"cancel": "Cancel", "resume": "Resume"}


@router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    viewer: Viewer,
    db: DbDep,
    status: StatusQuery = [],  # noqa: B006 (FastAPI copies the default)
    workflow: Text = None,
    project: Text = None,
    since: Text = None,
    until: Text = None,
    before: Annotated[str | None, Query(max_length=36)] = None,
) -> HTMLResponse:
    """Runs you may see, newest first, filtered."""
    query = RunQuery.of(status, workflow, project, since, until)
    found, counts = run_service.page(
        db, query.where(db, viewer.principal), limit=PAGE_SIZE + 1, before=before
    )
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    return render.page(
        request,
        "runs.html",
        runs=found,
        counts=counts,
        query=query,
        before=before,
        next_before=found[-1].id if more and found else None,
        statuses=states.RUN_STATES,
        projects=projects.list_visible(db, viewer.principal),
        project_names=_project_names(db, viewer),
    )


@router.get("/runs/rows", response_class=HTMLResponse)
def runs_rows(
    request: Request,
    viewer: Viewer,
    db: DbDep,
    status: StatusQuery = [],  # noqa: B006
    workflow: Text = None,
    project: Text = None,
    since: Text = None,
    until: Text = None,
) -> HTMLResponse:
    """The first page's rows again (what its refresh swaps in)."""
    query = RunQuery.of(status, workflow, project, since, until)
    found, counts = run_service.page(db, query.where(db, viewer.principal), limit=PAGE_SIZE)
    return render.page(
        request,
        "_runs_rows.html",
        runs=found,
        counts=counts,
        query=query,
        live=True,
        project_names=_project_names(db, viewer),
    )


def _project_names(db: DbDep, viewer: Viewer) -> dict[str, str]:
    return {p.id: p.name for p in projects.list_visible(db, viewer.principal)}


@router.post("/runs/bulk", response_class=HTMLResponse)
def runs_bulk(
    request: Request,
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    action: Annotated[str, Form(max_length=10)],
    scope: Annotated[str, Form(max_length=10)] = "selected",
    run_ids: Annotated[list[str], Form(max_length=run_service.MAX_BULK)] = [],  # noqa: B006
    status: Annotated[list[str], Form(max_length=5)] = [],  # noqa: B006
    workflow: Annotated[str | None, Form(max_length=100)] = None,
    project: Annotated[str | None, Form(max_length=100)] = None,
    since: Annotated[str | None, Form(max_length=40)] = None,
    until: Annotated[str | None, Form(max_length=40)] = None,
    as_of: Annotated[str | None, Form(max_length=40)] = None,
    confirm: Annotated[str | None, Form(max_length=5)] = None,
) -> Response:
    """Confirm, then cancel or resume the selected runs or every run matching the filter.

    The confirmation fixes the moment it was shown (``as_of``): runs created after it are
    never included, however long the page stays open."""
    if action not in BULK_ACTIONS:
        raise ValidationFailed(f"action {action!r} is not one of {', '.join(BULK_ACTIONS)}")
    if scope not in ("selected", "filter"):
        raise ValidationFailed("scope is 'selected' or 'filter'")
    query = RunQuery.of(status, workflow, project, since, until)
    moment = parse_time(as_of, "as_of") or datetime.now(UTC)
    back = "/runs" + (f"?{query.query()}" if query.pairs() else "")
    if scope == "selected" and not run_ids:
        return render.page(
            request,
            "runs_confirm.html",
            status=400,
            action=action,
            verb=BULK_ACTIONS[action],
            nothing=True,
            back=back,
        )
    where = query.where(db, viewer.principal)
    if where.created_before is None or where.created_before > moment:
        where = replace(where, created_before=moment)
    if confirm != "yes":
        count = run_service.count(db, where) if scope == "filter" else len(set(run_ids))
        return render.page(
            request,
            "runs_confirm.html",
            action=action,
            verb=BULK_ACTIONS[action],
            scope=scope,
            run_ids=list(dict.fromkeys(run_ids)),
            count=min(count, run_service.MAX_BULK),
            capped=count > run_service.MAX_BULK,
            query=query,
            as_of=moment.isoformat(timespec="seconds"),
            description=where.describe(),
            back=back,
        )
    act = run_service.cancel_many if action == "cancel" else run_service.resume_many
    done = act(
        db,
        viewer.principal,
        run_ids=run_ids if scope == "selected" else None,
        where=where if scope == "filter" else None,
        actor=actor_of(viewer.principal, meta),
    )
    verb = {"cancel": "cancelled", "resume": "resumed"}[action]
    message = f"{len(done.done)} run{'s' if len(done.done) != 1 else ''} {verb}"
    if done.skipped:
        message += f"; {len(done.skipped)} left as they were (finished, or nothing to resume)"
    return render.redirect("/runs" + (f"?{query.query()}" if query.pairs() else ""), message + ".")
