"""The API over real HTTP (awe up as a subprocess, SQLite and PostgreSQL): from the first
admin's setup link to a run's outputs, live events over SSE resumed with Last-Event-ID, and no
password or token in the server's log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import awe_env, first_admin, running_server

PASSWORD = "a long and secret passphrase"
WORKFLOW = """\
name: count
inputs:
  n: {type: integer, default: 12}
steps:
  - id: lines
    kind: shell
    with: {command: "for i in $(seq {{ inputs.n }}); do echo line $i; sleep 0.05; done"}
  - id: total
    kind: noop
    needs: [lines]
    with: {count: "{{ steps.lines.output.stdout.splitlines() | length }}"}
outputs:
  count: "{{ steps.total.output.count }}"
"""


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse a server-sent event stream into {id, event, data} dicts."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
            continue
        field, _, value = line.partition(": ")
        if field in ("id", "event"):
            event[field] = value
        elif field == "data":
            event["data"] = json.loads(value)


def test_setup_to_outputs_over_http_with_sse(tmp_path: Path, db_url: str) -> None:
    """Create the first admin with the setup link, create a project, push a workflow, start a
    run, follow its events to the end over SSE (reconnecting once with Last-Event-ID: no event
    lost or doubled), read the outputs; the trace id of the request is the run's; the log holds
    no password or token; registration is closed."""
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    with running_server("up", home=tmp_path, env=env) as base:
        closed = httpx.post(
            f"{base}/api/v1/auth/register", json={"email": "x@example.com", "password": PASSWORD}
        )
        assert closed.status_code == 403
        auth = first_admin(base, tmp_path, "ada@example.com", PASSWORD)
        assert (
            httpx.post(f"{base}/api/v1/projects", headers=auth, json={"name": "demo"}).status_code
            == 201
        )
        pushed = httpx.post(
            f"{base}/api/v1/projects/demo/workflows", headers=auth, json={"source": WORKFLOW}
        )
        assert pushed.status_code == 201, pushed.text
        started = httpx.post(
            f"{base}/api/v1/projects/demo/runs",
            headers={**auth, "X-Trace-Id": "trace-from-the-client-1"},
            json={"workflow": "count", "inputs": {"n": 12}, "idempotency_key": "first"},
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        again = httpx.post(
            f"{base}/api/v1/projects/demo/runs",
            headers=auth,
            json={"workflow": "count", "inputs": {"n": 12}, "idempotency_key": "first"},
        )
        assert again.json()["run_id"] == run_id  # the same key gives the same run
        stream_url = f"{base}/api/v1/runs/{run_id}/events/stream"
        first: list[dict[str, Any]] = []
        with httpx.stream("GET", stream_url, headers=auth, timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for event in sse(response):
                first.append(event)
                if len(first) == 5:
                    break  # the client goes away mid-run
        rest: list[dict[str, Any]] = []
        resume = {**auth, "Last-Event-ID": first[-1]["id"]}
        with httpx.stream("GET", stream_url, headers=resume, timeout=60) as response:
            for event in sse(response):
                if event.get("event") == "end":
                    assert event["data"]["status"] == "succeeded"
                    break
                rest.append(event)
        stored = httpx.get(f"{base}/api/v1/runs/{run_id}/events", headers=auth).json()
        received = [int(e["id"]) for e in first + rest]
        assert received == [e["seq"] for e in stored]  # all of them, once, in order
        logs = [e["data"]["message"] for e in first + rest if e["event"] == "log"]
        assert logs == [f"line {i}" for i in range(1, 13)]
        run = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=auth).json()
        assert (run["status"], run["outputs"]) == ("succeeded", {"count": 12})
        assert run["trace_id"] == "trace-from-the-client-1"
        token = httpx.post(f"{base}/api/v1/tokens", headers=auth, json={"name": "ci"}).json()[
            "token"
        ]
        assert (
            httpx.get(
                f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
        metrics = httpx.get(f"{base}/metrics").text
        assert "awe_http_request_duration_seconds_bucket" in metrics
        assert "awe_queue_depth" in metrics
        health = httpx.get(f"{base}/health").json()
        assert health["worker_system"]["enabled"] is True
        assert health["worker_system"]["workers"] >= 1
        status = httpx.get(f"{base}/public/status").json()
        assert status["counts"]["runs"]["succeeded"] >= 1
    log = (tmp_path / "server.log").read_text()
    assert PASSWORD not in log
    assert token not in log
    assert auth["Authorization"][7:] not in log
