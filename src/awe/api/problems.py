"""The one place an exception becomes an HTTP response: ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from awe.core.errors import AweError
from awe.core.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger("api")


def problem(
    *, status: int, title: str, detail: str, code: str, extra: dict[str, object] | None = None
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, object] = {
        "type": f"https://awe.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(AweError)
    async def _awe_error(_: Request, exc: AweError) -> JSONResponse:
        return problem(
            status=exc.http_status,
            title=(type(exc).__doc__ or "Error").strip().splitlines()[0],
            detail=exc.message,
            code=exc.code,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", "")} for err in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(
            status=422,
            title="The request is invalid.",
            detail=detail,
            code="validation",
            extra={"errors": errors},
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(
            status=exc.status_code, title=str(exc.detail), detail=str(exc.detail), code="http"
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # The boundary of the API: log the traceback for operators, never send it to the client.
        log.error("unhandled error", exc_info=exc)
        return problem(
            status=500,
            title="Internal error.",
            detail="An unexpected error occurred; the server log has the details.",
            code="internal",
        )
