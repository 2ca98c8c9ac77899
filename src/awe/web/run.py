"""A run's page and a step's: header, actions (each with its ``awe`` command), the DAG, the
timeline, live events, inputs and outputs; the fork dialog; downloads of whole payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from awe.api.deps import DbDep, MetaDep, actor_of
from awe.core.errors import NotFound, ValidationFailed
from awe.engine import states
from awe.engine.records import RunRecord, StepRecord
from awe.services import projects
from awe.services import runs as run_service
from awe.web import dag, render
from awe.web.session import Checked, Viewer, WebSession
from awe.web.timeline import timeline

router = APIRouter(include_in_schema=False)
#: Events shown on a run page when it opens (the newest; ``?events=N`` shows more, up to the
#: most; all of them are a download away).
SHOWN_EVENTS = 200
MAX_SHOWN_EVENTS = 5000
EVENT_TYPES = ("state", "log", "progress", "tokens")
LEVELS = ("debug", "info", "warning", "error")
Many = Annotated[list[str], Query(max_length=50)]


def event_filters(step: list[str], type_: list[str], level: list[str]) -> dict[str, list[str]]:
    """The events filter of a run page, checked."""
    for value in type_:
        if value not in EVENT_TYPES:
            raise ValidationFailed(f"event type {value!r} is not one of {', '.join(EVENT_TYPES)}")
    for value in level:
        if value not in LEVELS:
            raise ValidationFailed(f"level {value!r} is not one of {', '.join(LEVELS)}")
    return {"steps": step, "types": type_, "levels": level}


def actions(run: RunRecord) -> dict[str, bool]:
    """Which actions are valid for the run now."""
    return {
        "cancel": run.status not in states.RUN_FINAL,
        "resume": run.status in (states.RUN_FAILED, states.RUN_CANCELLED)
        and any(s.status in (states.DEAD, states.CANCELLED) for s in run.steps),
        "fork": run.status in states.RUN_FINAL,
    }


def run_parts(db: DbDep, viewer: WebSession, run: RunRecord, *, graph: bool) -> dict[str, Any]:
    """What the run page's live parts (header, DAG, steps) are drawn from."""
    needs = {s.step_key: list(s.needs) for s in run.steps}
    big = len(needs) > dag.DRAW_AT_MOST
    state_events = run_service.events_of(db, run.id, types=["state"], limit=20_000, newest=True)
    names = {p.id: p.name for p in projects.list_visible(db, viewer.principal)}
    return {
        "run": run,
        "project": names.get(run.project_id) if run.project_id else None,
        "steps": {s.step_key: s for s in run.steps},
        "layout": dag.layout(needs) if graph or not big else None,
        "big": big,
        "timeline": timeline(run.steps, state_events),
        "can": actions(run),
        "children": run_service.children_of(db, run),
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request,
    run_id: str,
    viewer: Viewer,
    db: DbDep,
    step: Many = [],  # noqa: B006 (FastAPI copies the default)
    type_: Annotated[list[str], Query(alias="type", max_length=4)] = [],  # noqa: B006
    level: Annotated[list[str], Query(max_length=4)] = [],  # noqa: B006
    graph: bool = False,
    forked: bool = False,
    events: Annotated[int, Query(ge=1)] = SHOWN_EVENTS,
) -> HTMLResponse:
    """A run: header, actions, DAG, timeline, events, inputs and outputs."""
    # The stream goes on from the newest event read *before* the run: a change committed
    # while the page is drawn is streamed, never lost between the two reads.
    run_service.check_visible(db, viewer.principal, run_id)
    last = run_service.events_of(db, run_id, limit=1, newest=True)
    cursor = last[-1].seq if last else 0
    run = run_service.visible_run(db, viewer.principal, run_id)
    filters = event_filters(step, type_, level)
    shown = run_service.events_of(
        db,
        run.id,
        limit=min(events, MAX_SHOWN_EVENTS),
        newest=True,
        steps=filters["steps"],
        types=filters["types"],
        levels=filters["levels"],
    )
    return render.page(
        request,
        "run.html",
        **run_parts(db, viewer, run, graph=graph),
        events=[e for e in shown if e.seq <= cursor],  # the stream brings the later ones
        events_limit=min(events, MAX_SHOWN_EVENTS),
        cursor=cursor,
        filters=filters,
        event_types=EVENT_TYPES,
        levels=LEVELS,
        flash={"level": "ok", "message": "This run is a fork: its reused outputs are marked."}
        if forked
        else None,
        live_query=_live_query(filters),
    )


def _live_query(filters: dict[str, list[str]]) -> str:
    pairs = [("step", s) for s in filters["steps"]]
    pairs += [("type", t) for t in filters["types"]] + [("level", v) for v in filters["levels"]]
    return urlencode(pairs)


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, viewer: Checked, db: DbDep, meta: MetaDep) -> Response:
    """Cancel the run, back to its page."""
    run_service.cancel(db, viewer.principal, run_id, actor=actor_of(viewer.principal, meta))
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/resume")
def resume(run_id: str, viewer: Checked, db: DbDep, meta: MetaDep) -> Response:
    """Resume the run from its dead and cancelled steps, back to its page."""
    run_service.resume(db, viewer.principal, run_id, actor=actor_of(viewer.principal, meta))
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.get("/runs/{run_id}/fork", response_class=HTMLResponse)
def fork_dialog(
    request: Request,
    run_id: str,
    viewer: Viewer,
    db: DbDep,
    from_step: Annotated[str, Query(max_length=100)],
) -> HTMLResponse:
    """What a fork from ``from_step`` reuses and what it runs again, and the button."""
    run = run_service.visible_run(db, viewer.principal, run_id)
    reused, again = run_service.fork_plan(run, from_step)
    return render.page(
        request, "fork.html", run=run, from_step=from_step, reused=reused, again=again
    )


@router.post("/runs/{run_id}/fork")
def fork(
    run_id: str,
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    from_step: Annotated[str, Form(max_length=100)],
) -> Response:
    """Fork the run from a step; on to the new run's page."""
    new_id = run_service.fork(
        db, viewer.principal, run_id, from_step, actor=actor_of(viewer.principal, meta)
    )
    return RedirectResponse(f"/runs/{new_id}?forked=1", status_code=303)


def _step(run: RunRecord, key: str) -> StepRecord:
    try:
        return run.step(key)
    except StopIteration:
        raise NotFound(f"run {run.id} has no step {key!r}") from None


@router.get("/runs/{run_id}/steps/{key}", response_class=HTMLResponse)
def step_page(request: Request, run_id: str, key: str, viewer: Viewer, db: DbDep) -> HTMLResponse:
    """One step: its attempts and errors, logs, input and output; requeue and fork."""
    run = run_service.visible_run(db, viewer.principal, run_id)
    step = _step(run, key)
    logs = run_service.events_of(db, run.id, steps=[key], limit=SHOWN_EVENTS * 5, newest=True)
    progress = next((e for e in reversed(logs) if e.type == "progress"), None)
    return render.page(
        request,
        "step.html",
        run=run,
        step=step,
        events=logs,
        progress=progress,
        child=run_service.children_of(db, run).get(key),
        retry_pending=step.status == states.QUEUED and step.attempt > 0 and step.run_after,
    )


@router.post("/runs/{run_id}/steps/{key}/requeue")
def requeue(run_id: str, key: str, viewer: Checked, db: DbDep, meta: MetaDep) -> Response:
    """Put a dead step back with fresh attempts; back to the step's page."""
    run = run_service.visible_run(db, viewer.principal, run_id)
    step = _step(run, key)
    run_service.requeue(
        db, viewer.principal, step_ids=[step.id], actor=actor_of(viewer.principal, meta)
    )
    return RedirectResponse(f"/runs/{run_id}/steps/{key}", status_code=303)


def _download(value: Any, name: str) -> Response:
    body = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return Response(
        body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.get("/runs/{run_id}/{part}.json")
def run_data(run_id: str, part: str, viewer: Viewer, db: DbDep) -> Response:
    """The run's whole inputs or outputs (the page shows the first 256 KB)."""
    if part not in ("inputs", "outputs"):
        raise NotFound(f"no {part} to download")
    shown = run_service.visible_run(db, viewer.principal, run_id).as_dict(steps=False)
    return _download(shown[part], f"run-{run_id}-{part}.json")


@router.get("/runs/{run_id}/steps/{key}/{part}.json")
def step_data(run_id: str, key: str, part: str, viewer: Viewer, db: DbDep) -> Response:
    """A step's whole input or output."""
    if part not in ("input", "output", "errors"):
        raise NotFound(f"no {part} to download")
    step = _step(run_service.visible_run(db, viewer.principal, run_id), key)
    return _download(step.as_dict()[part], f"run-{run_id}-{key}-{part}.json")


@router.get("/runs/{run_id}/events.jsonl")
def events_download(
    run_id: str,
    viewer: Viewer,
    db: DbDep,
    step: Many = [],  # noqa: B006
    type_: Annotated[list[str], Query(alias="type", max_length=4)] = [],  # noqa: B006
    level: Annotated[list[str], Query(max_length=4)] = [],  # noqa: B006
) -> Response:
    """Every event of the run (filtered as the page is), one JSON object a line."""
    filters = event_filters(step, type_, level)
    run_service.visible_run(db, viewer.principal, run_id)  # 404 before the download starts

    def lines() -> Iterator[bytes]:
        after = 0
        while True:
            batch = run_service.events(
                db,
                viewer.principal,
                run_id,
                after=after,
                limit=5000,
                steps=filters["steps"],
                types=filters["types"],
                levels=filters["levels"],
            )
            for event in batch:
                yield (json.dumps(event.as_dict(), ensure_ascii=False) + "\n").encode()
            if len(batch) < 5000:
                return
            after = batch[-1].seq

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="run-{run_id}-events.jsonl"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
