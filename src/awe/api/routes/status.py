"""Health and status for monitors: /livez, /public/status, /health (with the worker system)
and /metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from awe import __version__
from awe.api.deps import DbDep
from awe.services import health, queues
from awe.storage.database import DB_ERRORS

router = APIRouter(tags=["health"])


def _engine_numbers(db: Any) -> tuple[int, int, dict[str, dict[str, int]]] | None:
    try:
        ready = sum(q.ready for q in queues.queue_stats(db))
        return queues.live_workers(db), ready, queues.counts(db)
    except DB_ERRORS:
        return None


@router.get("/livez", summary="This process answers (no database call: for a proxy's health probe)")
def livez() -> dict[str, str]:
    """A proxy's active health check: the process is up and serving. It never touches the
    database, so a database outage does not take every API process out of rotation at once."""
    return {"status": "ok"}


@router.get("/public/status", summary="Version, uptime and counts (no authentication)")
def public_status(request: Request, db: DbDep) -> JSONResponse:
    """What a status page shows: version, uptime, and how many runs and workers there are."""
    numbers = _engine_numbers(db)
    body: dict[str, Any] = {
        "status": "ok" if numbers is not None else "degraded",
        "version": __version__,
        "uptime_seconds": round(time.monotonic() - request.app.state.started, 1),
    }
    if numbers is not None:
        workers, ready, counts = numbers
        body["counts"] = {"workers": workers, "queue_length": ready, **counts}
    return JSONResponse(body, status_code=200 if numbers is not None else 503)


@router.get("/health", summary="The API, its database and the worker system")
def health_check(db: DbDep) -> JSONResponse:
    """``worker_system``: ``{"enabled": true, "type": "awe", "workers": N, "queue_length": M}``."""
    result = health.check(db)
    numbers = _engine_numbers(db) if result.ok else None
    body = result.as_dict()
    body["worker_system"] = {
        "enabled": True,
        "type": "awe",
        "workers": numbers[0] if numbers else 0,
        "queue_length": numbers[1] if numbers else 0,
    }
    return JSONResponse(body, status_code=200 if result.ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """The Prometheus text format: HTTP request durations and the engine's gauges."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
