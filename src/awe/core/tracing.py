"""Traces over OpenTelemetry, when the ``awe[otel]`` extra is installed and
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; nothing
otherwise (every call here is then a cheap no-op).

One trace per run, under the trace id that already travels from the API into the run: the API
request's span, the run's span (written when the run ends, from its creation to its end), and a
span per step attempt, a child of the run's span, with the attempt's LLM requests and HTTP calls
as its children. The run's span id is derived from the run id, so a worker can name it as the
parent before the run's span exists (the standard ``OTEL_*`` variables configure the rest:
service name, headers, sampling).
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from awe.core.logging import get_logger

log = get_logger("tracing")
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_lock = threading.Lock()
_tracer: Any = None
#: Spans never keep an exception's text (the URL of a failed HTTP call holds its secrets).
_QUIET = {"record_exception": False, "set_status_on_exception": False}
_provider: Any = None
#: The span id the next span must have (the run's span, whose id is derived from the run's).
_next_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "awe_next_span_id", default=None
)
_next_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "awe_next_trace_id", default=None
)


class Span:
    """A span being recorded, or nothing (tracing off): attributes and an error status."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def set(self, attributes: Mapping[str, Any]) -> None:
        """Add attributes (None values are left out)."""
        if self.inner is not None:
            self.inner.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def fail(self, message: str) -> None:
        """Mark the span as failed, with why."""
        if self.inner is not None:
            from opentelemetry.trace import Status, StatusCode

            self.inner.set_status(Status(StatusCode.ERROR, message[:500]))


def configure(service: str) -> bool:
    """Start exporting this process's spans over OTLP if an endpoint is set; whether it did."""
    global _tracer, _provider
    if not any(os.environ.get(name) for name in _ENDPOINTS):
        return False
    with _lock:
        if _tracer is not None:
            return True
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed;"
                " no traces are sent (pip install 'awe[otel]')"
            )
            return False
        name = os.environ.get("OTEL_SERVICE_NAME") or f"awe-{service}"
        _provider = TracerProvider(
            resource=Resource.create({"service.name": name}), id_generator=_ids()
        )
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _tracer = _provider.get_tracer("awe")
        return True


def shutdown() -> None:
    """Send what is left and stop exporting (at process exit, and between tests)."""
    global _tracer, _provider
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        _tracer = _provider = None


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _tracer is not None


def trace_number(trace_id: str | None, fallback: str) -> int:
    """The 128-bit trace id of ``trace_id`` (32 hex digits as they are; any other text hashed),
    or of ``fallback`` when there is none."""
    text = (trace_id or "").lower()
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text) and int(text, 16):
        return int(text, 16)
    return int.from_bytes(hashlib.sha256((trace_id or fallback).encode()).digest()[:16], "big")


def run_span_id(run_id: str) -> int:
    """The span id of a run's span, derived from the run id (never 0)."""
    number = int.from_bytes(hashlib.sha256(f"run:{run_id}".encode()).digest()[:8], "big")
    return number or 1


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span, a child of the current one, around the block (an exception marks it failed)."""
    if _tracer is None:
        yield Span()
        return
    with _tracer.start_as_current_span(name, attributes=_clean(attributes), **_QUIET) as inner:
        yield from _guarded(inner)


@contextmanager
def under_run(
    name: str, *, trace_id: str | None, run_id: str, attributes: Mapping[str, Any]
) -> Iterator[Span]:
    """A span in the run's trace, a child of the run's span (a step attempt)."""
    if _tracer is None:
        yield Span()
        return
    with _tracer.start_as_current_span(
        name,
        context=_remote(trace_id, run_id, run_span_id(run_id)),
        attributes=_clean(attributes),
        **_QUIET,
    ) as inner:
        yield from _guarded(inner)


@contextmanager
def request_span(
    name: str, *, trace_id: str, parent_span: int | None, attributes: Mapping[str, Any]
) -> Iterator[Span]:
    """The span of one API request, in the trace ``trace_id``: under the caller's span when its
    traceparent named one, else the root of that trace."""
    if _tracer is None:
        yield Span()
        return
    from opentelemetry import trace

    with (
        _chosen(trace_id, trace_id, None),
        _tracer.start_as_current_span(
            name,
            context=_remote(trace_id, trace_id, parent_span) if parent_span else _root(),
            kind=trace.SpanKind.SERVER,
            **_QUIET,
            attributes=_clean(attributes),
        ) as inner,
    ):
        yield from _guarded(inner)


def record_run(
    *,
    trace_id: str | None,
    run_id: str,
    started: datetime,
    ended: datetime,
    attributes: Mapping[str, Any],
    error: str | None,
) -> None:
    """Write the span of a finished run: the root of its trace, its id derived from the run's."""
    if _tracer is None:
        return
    with _chosen(trace_id, run_id, run_span_id(run_id)):
        inner = _tracer.start_span(
            f"run {attributes.get('awe.workflow', '')}".strip(),
            context=_root(),
            attributes=_clean(attributes),
            start_time=_nanos(started),
        )
    if error:
        Span(inner).fail(error)
    inner.end(end_time=_nanos(max(ended, started)))


def _guarded(inner: Any) -> Iterator[Span]:
    """Yield the span; an exception marks it failed by its type only (its text may hold a
    secret or personal data, and spans leave the machine)."""
    try:
        yield Span(inner)
    except Exception as exc:
        Span(inner).fail(type(exc).__name__)
        raise


@contextmanager
def _chosen(trace_id: str | None, fallback: str, span_id: int | None) -> Iterator[None]:
    """The next root span gets this trace id (and this span id, when given)."""
    tokens = (
        _next_trace_id.set(trace_number(trace_id, fallback)),
        _next_span_id.set(span_id),
    )
    try:
        yield
    finally:
        _next_span_id.reset(tokens[1])
        _next_trace_id.reset(tokens[0])


def _root() -> Any:
    """A context with no current span: the next span starts a trace."""
    from opentelemetry.context import Context

    return Context()


def _remote(trace_id: str | None, fallback: str, parent_span: int) -> Any:
    """A context whose current span is the remote span ``parent_span`` of the given trace."""
    from opentelemetry import trace

    context = trace.SpanContext(
        trace_number(trace_id, fallback),
        parent_span,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(context))


def _ids() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class _Ids(RandomIdGenerator):
        """Random ids, except where awe chose them: a root span in the run's or the request's
        trace, and the run's span (derived from the run id)."""

        def generate_span_id(self) -> int:
            chosen = _next_span_id.get()
            return chosen if chosen is not None else super().generate_span_id()

        def generate_trace_id(self) -> int:
            chosen = _next_trace_id.get()
            return chosen if chosen is not None else super().generate_trace_id()

    return _Ids()


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if v is not None}


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
