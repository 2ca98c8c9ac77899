"""The run page live: server-sent events carrying HTML fragments for htmx's SSE extension.

``events`` appends new event rows (filtered as the page is); when a state changes, ``header``,
``dag``, ``steps`` and ``timeline`` are drawn again; ``end`` says the run is over (the page
then closes the stream instead of reconnecting). Reconnecting with ``Last-Event-ID`` resumes
after the last event received.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from awe.api.deps import DbDep, SettingsDep
from awe.core.errors import AweError
from awe.engine import states
from awe.services import runs as run_service
from awe.web import render
from awe.web.run import Many, event_filters, run_parts
from awe.web.session import Viewer, WebSession, current

router = APIRouter(include_in_schema=False)
POLL_SECONDS = 0.3
KEEPALIVE_SECONDS = 15.0
#: How often the stream checks that its viewer's session is still open and may see the run.
RECHECK_SECONDS = 5.0
#: The parts drawn again when a state changes, with their templates.
PARTS = {
    "header": "_run_header.html",
    "dag": "_run_dag.html",
    "steps": "_run_steps.html",
    "timeline": "_run_timeline.html",
}


def sse(event: str, html: str, ident: int | None = None) -> bytes:
    """One server-sent event whose data is ``html`` (each line its own ``data:``)."""
    lines = [f"id: {ident}"] if ident is not None else []
    lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in html.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


@router.get("/runs/{run_id}/live")
def live(
    request: Request,
    run_id: str,
    viewer: Viewer,
    db: DbDep,
    settings: SettingsDep,
    step: Many = [],  # noqa: B006 (FastAPI copies the default)
    type_: Annotated[list[str], Query(alias="type", max_length=4)] = [],  # noqa: B006
    level: Annotated[list[str], Query(max_length=4)] = [],  # noqa: B006
    after: Annotated[int, Query(ge=0)] = 0,
    graph: bool = False,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """The run's changes as HTML fragments, until it ends."""
    run_service.check_visible(db, viewer.principal, run_id)  # 404 before the stream starts
    filters = event_filters(step, type_, level)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after

    def draw(template: str, **values: object) -> str:
        return render.environment.get_template(template).render(
            session=viewer, request=request, **values
        )

    def still_allowed() -> WebSession | None:
        """The viewer again, if their session is open and they may still see the run."""
        try:
            again = current(request, db, settings)
            run_service.check_visible(db, again.principal, run_id)
        except AweError:
            return None
        return again

    def changes(cursor: int) -> tuple[int, list[bytes], bool]:
        batch = run_service.events_of(db, run_id, after=cursor, limit=500)
        if not batch:
            return cursor, [], run_service.status_of(db, run_id) in states.RUN_FINAL
        cursor = batch[-1].seq
        shown = [e for e in batch if _matches(e, filters)]
        out = []
        if shown:
            out.append(sse("events", draw("_events_rows.html", events=shown), cursor))
        if any(e.type == "state" for e in batch):
            run = run_service.visible_run(db, viewer.principal, run_id)
            parts = run_parts(db, viewer, run, graph=graph)
            out += [sse(name, draw(template, **parts)) for name, template in PARTS.items()]
        if not shown:
            out.append(f"id: {cursor}\n\n".encode())  # the cursor moves on all the same
        return cursor, out, False

    async def produce() -> AsyncIterator[bytes]:
        cursor = start
        quiet = 0.0
        checked = asyncio.get_running_loop().time()
        yield b"retry: 2000\n\n"
        while True:
            if asyncio.get_running_loop().time() - checked > RECHECK_SECONDS:
                if await asyncio.to_thread(still_allowed) is None:
                    yield sse("end", "")  # logged out, deactivated, or no longer allowed
                    return
                checked = asyncio.get_running_loop().time()
            cursor, out, ended = await asyncio.to_thread(changes, cursor)
            for chunk in out:
                yield chunk
            if ended:
                yield sse("end", "")
                return
            if out:
                quiet = 0.0
                continue
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if quiet >= KEEPALIVE_SECONDS:
                yield b": keep-alive\n\n"
                quiet = 0.0

    return StreamingResponse(
        produce(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _matches(event: object, filters: dict[str, list[str]]) -> bool:
    step_key = getattr(event, "step_key", None)
    if filters["steps"] and step_key not in filters["steps"]:
        return False
    if filters["types"] and getattr(event, "type", None) not in filters["types"]:
        return False
    return not (filters["levels"] and getattr(event, "level", None) not in filters["levels"])
