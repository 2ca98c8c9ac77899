"""Runs: list, show, cancel, resume, fork, events (and their live stream); the dead-letter queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import StreamingResponse

from awe.api.deps import CurrentPrincipal, DbDep, MetaDep, actor_of
from awe.api.schemas import (
    MAX_AGE_SECONDS,
    BulkPublic,
    EventPublic,
    Requeued,
    RequeueIn,
    RunFork,
    RunPublic,
    RunsBulkIn,
    RunStarted,
    StepPublic,
)
from awe.engine import states
from awe.engine.client import Engine
from awe.engine.listing import RunFilter
from awe.services import projects, runs
from awe.services.tokens import Principal
from awe.storage.database import Database

router = APIRouter(tags=["runs"])
POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0


@router.get("/runs", response_model=list[RunPublic])
def list_runs(
    principal: CurrentPrincipal,
    db: DbDep,
    project: Annotated[str | None, Query(max_length=100)] = None,
    status_: Annotated[
        list[str], Query(alias="status", max_length=5, description="Any of these (repeatable)")
    ] = [],  # noqa: B006 (FastAPI copies the default)
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[datetime | None, Query(description="Created at or after")] = None,
    until: Annotated[datetime | None, Query(description="Created before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[str | None, Query(max_length=36, description="A run id to page from")] = None,
) -> list[dict[str, object]]:
    """The runs you may see, newest first, each with its step counts by state."""
    where = _where(db, principal, project, status_, workflow, since, until)
    found, counts = runs.page(db, where, limit=limit, before=before)
    return [{**r.as_dict(), "step_counts": counts.get(r.id, {})} for r in found]


def _where(
    db: Database,
    principal: Principal,
    project: str | None,
    statuses: list[str],
    workflow: str | None,
    since: datetime | None,
    until: datetime | None,
) -> RunFilter:
    scope = projects.visible(db, principal, project) if project else None
    return runs.run_filter(
        db,
        principal,
        project=scope,
        statuses=statuses,
        workflow=workflow,
        created_after=since,
        created_before=until,
    )


@router.post("/runs/cancel", response_model=BulkPublic)
def cancel_runs(
    body: RunsBulkIn, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Cancel runs by id, or every unfinished run a filter matches."""
    return runs.cancel_many(
        db, principal, **_bulk(db, principal, body), actor=actor_of(principal, meta)
    ).as_dict()


@router.post("/runs/resume", response_model=BulkPublic)
def resume_runs(
    body: RunsBulkIn, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Resume runs by id, or every run a filter matches that has dead or cancelled steps."""
    return runs.resume_many(
        db, principal, **_bulk(db, principal, body), actor=actor_of(principal, meta)
    ).as_dict()


def _bulk(db: Database, principal: Principal, body: RunsBulkIn) -> dict[str, Any]:
    if body.filter is None:
        return {"run_ids": body.run_ids}
    f = body.filter
    where = _where(
        db, principal, f.project, f.statuses, f.workflow, f.created_after, f.created_before
    )
    return {"run_ids": body.run_ids, "where": where}


@router.get("/runs/{run_id}", response_model=RunPublic)
def show_run(run_id: str, principal: CurrentPrincipal, db: DbDep) -> dict[str, object]:
    """A run with its steps, attempts, errors and outputs."""
    return runs.visible_run(db, principal, run_id).as_dict()


@router.post("/runs/{run_id}/cancel", response_model=RunPublic)
def cancel_run(
    run_id: str, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Cancel: waiting steps at once, running ones (and their processes) right after."""
    return runs.cancel(db, principal, run_id, actor=actor_of(principal, meta)).as_dict()


@router.post("/runs/{run_id}/resume", response_model=Requeued)
def resume_run(
    run_id: str, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Re-queue the run's dead and cancelled steps; finished steps are not run again."""
    return {"requeued": runs.resume(db, principal, run_id, actor=actor_of(principal, meta))}


@router.post("/runs/{run_id}/fork", status_code=status.HTTP_201_CREATED, response_model=RunStarted)
def fork_run(
    run_id: str, body: RunFork, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """A new run reusing every output not downstream of ``from_step``."""
    return {
        "run_id": runs.fork(db, principal, run_id, body.from_step, actor=actor_of(principal, meta))
    }


@router.get("/runs/{run_id}/events", response_model=list[EventPublic])
def run_events(
    run_id: str,
    principal: CurrentPrincipal,
    db: DbDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    step: Annotated[list[str], Query(max_length=200, description="Of these steps")] = [],  # noqa: B006
    type_: Annotated[
        list[str], Query(alias="type", max_length=50, description="Of these types")
    ] = [],  # noqa: B006
    level: Annotated[list[str], Query(max_length=10, description="Of these levels")] = [],  # noqa: B006
) -> list[dict[str, object]]:
    """State changes, logs, tokens and progress, after the event numbered ``after`` (``seq``);
    only those of the given steps, types and levels when any are given."""
    found = runs.events(
        db, principal, run_id, after=after, limit=limit, steps=step, types=type_, levels=level
    )
    return [e.as_dict() for e in found]


@router.get(
    "/runs/{run_id}/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
def stream_events(
    run_id: str,
    request: Request,
    principal: CurrentPrincipal,
    db: DbDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    """The run's events as server-sent events, live, until it ends; reconnecting with
    ``Last-Event-ID`` resumes right after the last event received."""
    runs.visible_run(db, principal, run_id)  # 404 before the stream starts; checked once
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    engine = Engine(db)

    async def produce() -> AsyncIterator[bytes]:
        cursor = start
        quiet = 0.0
        yield b"retry: 2000\n\n"
        while True:
            batch = await asyncio.to_thread(engine.events, run_id, after=cursor)
            for event in batch:
                cursor = event.seq
                data = json.dumps(event.as_dict(), separators=(",", ":"))
                yield f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()
            if batch:
                quiet = 0.0
                continue
            status = await asyncio.to_thread(engine.status, run_id)
            if status in states.RUN_FINAL:
                tail = await asyncio.to_thread(engine.events, run_id, after=cursor)
                if not tail:
                    yield f"event: end\ndata: {json.dumps({'status': status})}\n\n".encode()
                    return
                continue
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if quiet >= KEEPALIVE_SECONDS:  # comments keep proxies from closing an idle stream
                yield b": keep-alive\n\n"
                quiet = 0.0

    return StreamingResponse(
        produce(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/dlq", response_model=list[StepPublic], tags=["dlq"])
def dead_letters(
    principal: CurrentPrincipal,
    db: DbDep,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    workflow: Annotated[str | None, Query(max_length=100)] = None,
    older_than_seconds: Annotated[float | None, Query(ge=0, le=MAX_AGE_SECONDS)] = None,
) -> list[dict[str, object]]:
    """Dead steps (retries exhausted or not retryable) of the runs you may see."""
    found = runs.dead_letters(
        db,
        principal,
        queue=queue,
        category=category,
        workflow=workflow,
        older_than_seconds=older_than_seconds,
    )
    return [s.as_dict() for s in found]


@router.post("/dlq/requeue", response_model=Requeued, tags=["dlq"])
def requeue(
    body: RequeueIn, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Put dead steps back with fresh attempts: by ``step_ids``, or all that match the filter."""
    done = runs.requeue(
        db,
        principal,
        step_ids=body.step_ids,
        queue=body.queue,
        category=body.category,
        workflow=body.workflow,
        older_than_seconds=body.older_than_seconds,
        actor=actor_of(principal, meta),
    )
    return {"requeued": done}


@router.post("/dlq/{step_id}/requeue", response_model=Requeued, tags=["dlq"])
def requeue_one(
    step_id: str, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """Put one dead step back with fresh attempts."""
    done = runs.requeue(db, principal, step_ids=[step_id], actor=actor_of(principal, meta))
    return {"requeued": done}
