"""Built-in kind ``http``: one HTTP request with httpx; the response becomes the output.

``with: {method, url, headers, params, json | body, timeout, follow_redirects, max_bytes,
fail_on_status}``. A 429 or 5xx answer is retryable (``http:503``), any other 4xx is not
(``http:404``); with ``fail_on_status: false`` every answer is an output instead. A refused
connection is ``connection`` and a slow server ``timeout``, both retryable. Requests that change
something (anything but GET, HEAD and OPTIONS) carry ``Idempotency-Key`` (the step's key) unless
the step sets it, and are not sent in a dry run. Loopback, private and link-local destinations
are refused unless the outbound policy allows them (engine/outbound.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from awe import __version__
from awe.core import tracing
from awe.core.errors import ValidationFailed
from awe.engine import outbound
from awe.engine.context import StepContext
from awe.engine.errors import StepError, StepTimeout
from awe.engine.registry import step_kind

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
METHODS = SAFE_METHODS | {"POST", "PUT", "PATCH", "DELETE"}
KEYS = frozenset(
    {
        "method",
        "url",
        "headers",
        "params",
        "json",
        "body",
        "timeout",
        "follow_redirects",
        "max_bytes",
        "fail_on_status",
    }
)
MAX_BYTES = 1024 * 1024
USER_AGENT = f"awe/{__version__}"


@dataclass(frozen=True)
class Request:
    """A checked request."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    content: bytes | None
    timeout: float
    follow_redirects: bool = True
    max_bytes: int = MAX_BYTES
    fail_on_status: bool = True


@step_kind(keys=KEYS)
def run_http(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Send the request; the output has status, headers, the body (json or text) and timing."""
    request = parse_request(ctx, params)
    if ctx.dry_run and request.method not in SAFE_METHODS:
        ctx.log(f"dry run: {request.method} {request.url} not sent")
        return {"dry_run": True, "method": request.method, "url": request.url}
    return send(ctx, request)


def parse_request(ctx: StepContext, params: Any) -> Request:
    """Check an http step's parameters; ValidationFailed naming each problem."""
    if not isinstance(params, dict):
        raise ValidationFailed("http needs with: {url: …}")
    problems = [f"with.{k} is not an http parameter" for k in params if k not in KEYS]
    url = params.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.append(f"with.url must be an http:// or https:// URL, not {url!r}")
    method = str(params.get("method", "GET")).upper()
    if method not in METHODS:
        problems.append(f"with.method {method!r} is not one of {', '.join(sorted(METHODS))}")
    if "json" in params and "body" in params:
        problems.append("give with.json or with.body, not both")
    headers = params.get("headers") or {}
    query = params.get("params") or {}
    for name, value in (("headers", headers), ("params", query)):
        if not isinstance(value, dict):
            problems.append(f"with.{name} must be a mapping")
    timeout = params.get("timeout", ctx.settings.http_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        problems.append(f"with.timeout must be seconds > 0, not {timeout!r}")
    if problems:
        raise ValidationFailed("http: " + "; ".join(problems))
    headers = {str(k): str(v) for k, v in headers.items()}
    content: bytes | None = None
    if "json" in params:
        content = json.dumps(params["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif params.get("body") is not None:
        content = str(params["body"]).encode()
    if method not in SAFE_METHODS and not any(k.lower() == "idempotency-key" for k in headers):
        headers["Idempotency-Key"] = ctx.idempotency_key
    headers.setdefault("User-Agent", USER_AGENT)
    remaining = ctx.remaining()
    return Request(
        method=method,
        url=str(url),
        headers=headers,
        params={str(k): str(v) for k, v in query.items()},
        content=content,
        timeout=min(float(timeout), remaining) if remaining is not None else float(timeout),
        follow_redirects=bool(params.get("follow_redirects", True)),
        max_bytes=int(params.get("max_bytes", MAX_BYTES)),
        fail_on_status=bool(params.get("fail_on_status", True)),
    )


def send(ctx: StepContext, request: Request, *, trusted: str | None = None) -> dict[str, Any]:
    """Send a checked request; raise a classified StepError for answers that are failures.

    ``trusted``: a URL the operator configured (its host and port may be private).
    """
    try:
        host = httpx.URL(request.url).host
    except httpx.InvalidURL:
        host = ""  # _send says what is wrong with it
    # The span names the method and host only: a path or query may carry a secret.
    with tracing.span(
        f"http {request.method}",
        {"http.request.method": request.method, "server.address": host or None},
    ) as span:
        output = _send(ctx, request, trusted)
        span.set({"http.response.status_code": output.get("status")})
        return output


def _send(ctx: StepContext, request: Request, trusted: str | None) -> dict[str, Any]:
    started = time.monotonic()
    try:
        with (
            outbound.client(
                ctx.settings,
                trusted=[trusted],
                timeout=request.timeout,
                follow_redirects=request.follow_redirects,
            ) as c,
            c.stream(
                request.method,
                request.url,
                headers=request.headers,
                params=request.params,
                content=request.content,
            ) as response,
        ):
            body, truncated = _read(response, request.max_bytes)
    except httpx.TimeoutException:
        raise StepTimeout(request.timeout) from None
    except httpx.InvalidURL as exc:
        raise ValidationFailed(f"http: invalid URL {request.url!r}: {exc}") from None
    except httpx.TransportError as exc:
        raise StepError(
            f"{request.method} {request.url}: {exc or type(exc).__name__}",
            category="connection",
            retryable=True,
        ) from None
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    output = _output(response, body, truncated, elapsed_ms)
    ctx.log(f"{request.method} {request.url} -> {response.status_code} in {elapsed_ms} ms")
    if response.status_code >= 400 and request.fail_on_status:
        raise status_error(request, response.status_code, body)
    return output


def status_error(request: Request, status: int, body: bytes) -> StepError:
    """429 and 5xx are worth retrying; other 4xx answers will not change on their own."""
    snippet = body[:300].decode("utf-8", "replace").strip()
    message = f"{request.method} {request.url} answered {status}" + (
        f": {snippet}" if snippet else ""
    )
    retryable = status == 429 or status >= 500
    return StepError(message, category=f"http:{status}", retryable=retryable)


def _read(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _output(
    response: httpx.Response, body: bytes, truncated: bool, elapsed_ms: float
) -> dict[str, Any]:
    output: dict[str, Any] = {
        "status": response.status_code,
        "url": str(response.url),
        "headers": dict(response.headers),
        "elapsed_ms": elapsed_ms,
        "truncated": truncated,
    }
    text = body.decode(response.encoding or "utf-8", "replace")
    if "json" in response.headers.get("content-type", "") and not truncated:
        try:
            output["json"] = json.loads(text)
        except ValueError:
            output["text"] = text
    else:
        output["text"] = text
    return output
