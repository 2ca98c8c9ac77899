"""The one place an exception becomes an HTTP response: ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from awe.api.schemas import Problem
from awe.core.errors import AuthenticationFailed, AweError, TooManyRequests
from awe.core.logging import get_logger

PROBLEM_JSON = "application/problem+json"


def _described(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
    }


#: The error answers every route may give, for the OpenAPI document.
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("The request is malformed"),
    401: _described("No valid bearer token"),
    403: _described("Not allowed"),
    404: _described("Not found (or not yours)"),
    409: _described("Conflicts with the current state"),
    413: _described("The request body is too large"),
    422: _described("The input is invalid"),
    429: _described("Too many attempts: see Retry-After"),
    500: _described("An unexpected error"),
    503: _described("A dependency (the database, a provider) is unavailable"),
}
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


class BodyTooLarge(Exception):
    """The request body passed its limit while being read."""


def too_large(limit: int) -> JSONResponse:
    """The 413 answer for a body over ``limit`` bytes."""
    return problem(
        status=413,
        title="The request is too large.",
        detail=f"the request body is over {limit} bytes",
        code="too-large",
    )


#: Renders an error as a web page instead, for the paths it serves (None for the others).
PageRenderer = Callable[[Request, int, str, str, Exception], Response | None]


def install(app: FastAPI, *, pages: PageRenderer | None = None) -> None:
    """Register the exception handlers on ``app``; ``pages`` answers errors of web pages."""

    def answer(
        request: Request,
        exc: Exception,
        *,
        status: int,
        title: str,
        detail: str,
        code: str,
        extra: dict[str, object] | None = None,
    ) -> Response:
        shown = pages(request, status, title, detail, exc) if pages is not None else None
        if shown is not None:
            return shown
        return problem(status=status, title=title, detail=detail, code=code, extra=extra)

    @app.exception_handler(AweError)
    async def _awe_error(request: Request, exc: AweError) -> Response:
        response = answer(
            request,
            exc,
            status=exc.http_status,
            title=(type(exc).__doc__ or "Error").strip().splitlines()[0],
            detail=exc.message,
            code=exc.code,
        )
        if isinstance(exc, AuthenticationFailed):
            response.headers["WWW-Authenticate"] = 'Bearer realm="awe"'
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        # The database refused a value (PostgreSQL: a NUL character in text, a number too big).
        reason = str(exc.orig).splitlines()[0] if exc.orig else "a value the database refuses"
        return answer(
            request,
            exc,
            status=422,
            title="The input is invalid.",
            detail=f"invalid value: {reason}",
            code="validation",
        )

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> Response:
        # Two requests raced for the same name, or a reference points at nothing.
        return answer(
            request,
            exc,
            status=409,
            title="This conflicts with the current state.",
            detail="the change conflicts with what is stored (taken already, or refers to"
            " something that does not exist)",
            code="conflict",
        )

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> Response:
        log.warning("database unavailable", error=str(exc.orig).splitlines()[0][:200])
        return answer(
            request,
            exc,
            status=503,
            title="The database is unavailable.",
            detail="the database did not answer; try again shortly",
            code="connection",
        )

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        return answer(
            request,
            exc,
            status=413,
            title="The request is too large.",
            detail=str(exc),
            code="too-large",
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", "")} for err in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return answer(
            request,
            exc,
            status=422,
            title="The request is invalid.",
            detail=detail,
            code="validation",
            extra={"errors": errors},
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return answer(
            request,
            exc,
            status=exc.status_code,
            title=str(exc.detail),
            detail=str(exc.detail),
            code="http",
        )

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> Response:
        # Input nested deeper than anything reasonable (a JSON body of 100,000 brackets).
        return answer(
            request,
            exc,
            status=422,
            title="The input is invalid.",
            detail="the input is nested too deeply to process",
            code="validation",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The boundary of the API: log the traceback for operators, never send it to the client.
        log.error("unhandled error", exc_info=exc)
        return answer(
            request,
            exc,
            status=500,
            title="Internal error.",
            detail="An unexpected error occurred; the server log has the details.",
            code="internal",
        )
