"""Health endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from awe.services import health

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the API and its database answering")
def api_health(request: Request) -> JSONResponse:
    """``{"status": "ok", "database": "ok", ...}``; 503 with reasons when the database is down."""
    result = health.check(request.app.state.db)
    return JSONResponse(result.as_dict(), status_code=200 if result.ok else 503)
