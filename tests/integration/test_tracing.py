"""Traces over OTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, a run's span, its step attempts'
spans (children of the run's), and an API request's span reach an OTLP receiver under the trace
id the run was given; a failed attempt's span says it failed. (The receiver is a stand-in for a
collector; the real OpenTelemetry exporter talks to it.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from awe.api.app import create_app
from awe.core import tracing
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Receiver:
    """An OTLP/HTTP trace endpoint that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        receiver.spans.extend(scope.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list[Any]:
        """The spans called ``name``."""
        return [s for s in self.spans if s.name == name]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """Tracing on, exporting to a fresh receiver; off again afterwards."""
    found = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    assert tracing.configure("test")
    yield found
    tracing.shutdown()
    found.server.shutdown()
    found.server.server_close()


def test_a_run_and_its_attempts_share_the_trace_and_nest(
    receiver: Receiver, engine: Engine, drain: Drain
) -> None:
    """A run given a trace id yields a run span (the root) and a span per step attempt, each a
    child of the run's span, all in that trace; the failing step's spans are errors."""
    spec = {
        "name": "traced",
        "steps": [
            {"id": "fine", "kind": "noop"},
            {
                "id": "broken",
                "kind": "python",
                "with": {"function": "tests.support.kinds:boom"},
                "retry": {"max_attempts": 2, "backoff": [0]},
            },
        ],
    }
    run_id = engine.submit(spec, {}, trace_id=TRACE)
    drain()
    tracing.shutdown()  # sends what is left
    (run,) = receiver.named("run traced")
    assert run.trace_id.hex() == TRACE
    assert run.parent_span_id == b""
    assert {a.key: a.value.string_value for a in run.attributes}["awe.run_id"] == run_id
    assert run.status.code == 2  # error: a step failed
    (fine,) = receiver.named("step fine")
    broken = receiver.named("step broken")
    assert len(broken) == 2  # one span per attempt
    for span in (fine, *broken):
        assert span.trace_id.hex() == TRACE
        assert span.parent_span_id == run.span_id
    assert fine.status.code != 2
    assert all(b.status.code == 2 for b in broken)
    assert broken[0].status.message == "exception:RuntimeError"  # the category, not the text


def test_an_api_request_span_follows_the_callers_traceparent(
    receiver: Receiver, settings: Settings, database: Database
) -> None:
    """A request that names a parent in its traceparent gets a server span under that parent,
    in that trace, with its route and status."""
    parent = "00f067aa0ba902b7"
    with TestClient(create_app(settings, db=database)) as client:
        answer = client.get("/public/status", headers={"traceparent": f"00-{TRACE}-{parent}-01"})
    assert answer.headers["x-trace-id"] == TRACE
    tracing.shutdown()
    (span,) = [s for s in receiver.spans if s.name == "GET request"]
    assert span.trace_id.hex() == TRACE
    assert span.parent_span_id.hex() == parent
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["http.route"].string_value == "/public/status"
    assert attributes["http.response.status_code"].int_value == answer.status_code


def test_a_failed_http_call_leaves_no_url_or_message_in_its_spans(
    receiver: Receiver, engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """An HTTP step whose URL carries a token and whose call fails: its span says it failed,
    by the error's type only, and no span anywhere holds the token."""
    token = "tok-3f9c2e71a5"
    spec = {
        "name": "leaky",
        "steps": [
            {
                "id": "call",
                "kind": "http",
                "with": {"url": f"http://127.0.0.1:9/hook?token={token}"},
                "retry": {"max_attempts": 1},
            }
        ],
    }
    run_id = engine.submit(spec, {}, trace_id=TRACE)
    drain(settings=make_settings(tmp_path, http_allowed_hosts="127.0.0.1"))
    tracing.shutdown()
    (step,) = engine.get_run(run_id).steps
    assert token in (step.error_message or "")  # the error does hold it: spans must not
    (http,) = [s for s in receiver.spans if s.name == "http GET"]
    assert http.status.code == 2
    assert token not in http.status.message
    for span in receiver.spans:
        assert token not in str(span), span.name
