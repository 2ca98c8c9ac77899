"""Every request: a request id and a trace id, a body size limit, and its duration measured.

``/metrics`` serves Prometheus text: the HTTP request duration histogram, and the engine's
gauges (queue depth, age of the oldest ready step, runs and steps by state, live workers),
read from the database when scraped, so every API process reports the same truth.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from awe.api.metrics_state import Probe, StateCollector, unreadable
from awe.api.problems import BodyTooLarge, too_large
from awe.core import metrics, tracing
from awe.core.config import Settings
from awe.core.errors import AweError
from awe.core.ids import new_id
from awe.core.logging import get_logger
from awe.services import operations, queues
from awe.storage.database import Database

log = get_logger("api")
_TRACEPARENT = re.compile(
    r"^[0-9a-f]{2}-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-[0-9a-f]{2}$"
)


class EngineCollector(Collector):
    """Gauges of the engine's state, from the database at scrape time."""

    def __init__(self, db: Database, probe: Probe) -> None:
        self.db = db
        self.probe = probe

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Queue depth and age, runs and steps by state, live workers."""
        if not self.probe.up:
            return  # the database is down: awe_database_up says so; no stale numbers here
        try:
            stats = queues.queue_stats(self.db)
            counted = queues.counts(self.db)
            workers = queues.live_workers(self.db)
        except (SQLAlchemyError, AweError) as exc:
            unreadable("engine", exc)
            return
        depth = GaugeMetricFamily(
            "awe_queue_depth", "Steps ready to run, by queue", labels=["queue"]
        )
        waiting = GaugeMetricFamily(
            "awe_queue_waiting_retry", "Steps waiting out a retry backoff", labels=["queue"]
        )
        running = GaugeMetricFamily(
            "awe_queue_running", "Steps running, by queue", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "awe_queue_oldest_ready_age_seconds", "Age of the oldest ready step", labels=["queue"]
        )
        for q in stats:
            depth.add_metric([q.name], q.ready)
            waiting.add_metric([q.name], q.waiting_retry)
            running.add_metric([q.name], q.running)
            age.add_metric([q.name], q.oldest_ready_age_seconds or 0.0)
        runs = GaugeMetricFamily("awe_runs", "Runs by state", labels=["state"])
        for state, n in counted["runs"].items():
            runs.add_metric([state], n)
        steps = GaugeMetricFamily("awe_steps", "Steps by state", labels=["state"])
        for state, n in counted["steps"].items():
            steps.add_metric([state], n)
        dead = GaugeMetricFamily("awe_dead_letters", "Steps in the dead-letter queue")
        dead.add_metric([], counted["steps"].get("dead", 0))
        live = GaugeMetricFamily("awe_workers_live", "Workers heartbeating")
        live.add_metric([], workers)
        yield from (depth, waiting, running, age, runs, steps, dead, live)


class ScriptCollector(Collector):
    """The last run of each operational command (``awe doctor``, ``awe backup create``…), from
    ``script_executions`` at scrape time: the CLI's processes are gone by then."""

    def __init__(self, db: Database, probe: Probe) -> None:
        self.db = db
        self.probe = probe

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Duration, outcome and time of each command's last run."""
        if not self.probe.up:
            return
        try:
            latest = operations.latest_by_command(self.db)
        except (SQLAlchemyError, AweError) as exc:
            unreadable("scripts", exc)  # behind the migration that made the table
            return
        duration = GaugeMetricFamily(
            "script_execution_duration_seconds",
            "How long the last run of an operational command took",
            labels=["command"],
        )
        status = GaugeMetricFamily(
            "script_execution_status",
            "Whether the last run of an operational command succeeded (1) or not (0)",
            labels=["command"],
        )
        last = GaugeMetricFamily(
            "script_last_run_timestamp",
            "When an operational command last finished (Unix time)",
            labels=["command"],
        )
        for run in latest:
            duration.add_metric([run.command], run.duration_seconds)
            status.add_metric([run.command], 1 if run.exit_code in operations.SUCCESS_CODES else 0)
            last.add_metric([run.command], run.finished_at.timestamp())
        yield from (duration, status, last)


class Metrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self, db: Database, settings: Settings | None = None) -> None:
        metrics.describe("sqlite" if db.is_sqlite else "postgresql")
        self.registry = CollectorRegistry()
        self.http = Histogram(
            "awe_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.probe = Probe(db)
        self.registry.register(EngineCollector(db, self.probe))
        self.registry.register(ScriptCollector(db, self.probe))
        self.registry.register(StateCollector(db, settings or db.settings, self.probe))

    def render(self) -> bytes:
        """The Prometheus text: this process's own series (its workers, scheduler, LLM calls,
        when ``awe up`` runs them here), then the API's requests and the database's gauges.
        One ping decides whether the database's gauges are read at all."""
        self.probe.check()
        return metrics.render(self.registry)


def trace_id_of(headers: dict[str, str]) -> str:
    """The caller's trace id (W3C traceparent, or X-Trace-Id), else a new one."""
    parent = _TRACEPARENT.match(headers.get("traceparent", ""))
    if parent:
        return parent["trace"]
    given = headers.get("x-trace-id", "")
    if re.fullmatch(r"[0-9A-Za-z-]{8,64}", given):
        return given
    return new_id().replace("-", "")


class Observe:
    """ASGI middleware: ids, the body limit, and the request duration histogram."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, max_bytes: int, upload_bytes: int
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id, trace_id = new_id(), trace_id_of(headers)
        scope.setdefault("state", {}).update(request_id=request_id, trace_id=trace_id)
        multipart = headers.get("content-type", "").startswith("multipart/form-data")
        limit = self.upload_bytes + 65536 if multipart else self.max_bytes
        started = time.perf_counter()
        status = [500]

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                    (b"x-trace-id", trace_id.encode()),
                ]
            await send(message)

        declared = headers.get("content-length", "")
        parent = _TRACEPARENT.match(headers.get("traceparent", ""))
        with tracing.request_span(
            f"{scope['method']} request",
            trace_id=trace_id,
            parent_span=int(parent["span"], 16) if parent else None,
            attributes={"http.request.method": scope["method"], "awe.request_id": request_id},
        ) as span:
            if declared.isdigit() and int(declared) > limit:
                await too_large(limit)(scope, receive, send_with_ids)
            else:
                await self.app(scope, _counting(receive, limit), send_with_ids)
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            span.set({"http.route": template, "http.response.status_code": status[0]})
            if status[0] >= 500:
                span.fail(f"answered {status[0]}")
        self.metrics.http.labels(scope["method"], template, str(status[0])).observe(
            time.perf_counter() - started
        )


def _counting(receive: Receive, limit: int) -> Receive:
    seen = [0]

    async def counted() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            seen[0] += len(message.get("body", b""))
            if seen[0] > limit:
                raise BodyTooLarge(f"the request body is over {limit} bytes")
        return message

    return counted
