"""The API's resources doing their jobs: workflows (YAML, JSON, validation), runs (start,
cancel, resume, fork), the DLQ, queues and workers, schedules, knowledge, and the audit trail.

FLAKY runs a shell step, a privileged kind: the admin pushes it into the member's project, and
the member starts its runs (they run with the admin's privileges)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from awe.api.app import create_app
from awe.core.config import Settings
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
FLAKY = """\
name: flaky
inputs:
  marker: {type: string, required: true}
schedule: "0 4 * * *"
steps:
  - id: check
    kind: shell
    retry: {max_attempts: 1}
    with: {command: "test -e {{ inputs.marker }}"}
  - id: after
    kind: noop
    needs: [check]
"""
ADMIN = {"Authorization": "Bearer resources-admin-token-0123456789"}


def push_as_admin(client: TestClient, source: str) -> Any:
    """Push a workflow into the member's project 'demo' with the admin token."""
    return client.post("/api/v1/projects/demo/workflows", headers=ADMIN, json={"source": source})


@pytest.fixture
def api(
    database: Database, tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str], Settings]]:
    """A client, a logged-in member's header with a project 'demo', and the settings."""
    settings = make_settings(
        tmp_path, admin_token="resources-admin-token-0123456789", registration_open=True
    )
    with TestClient(create_app(settings, db=database)) as client:
        body = {"email": "ada@example.com", "password": "a long password here"}
        client.post("/api/v1/auth/register", json=body)
        token = client.post("/api/v1/auth/login", json=body).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (
            client.post("/api/v1/projects", headers=headers, json={"name": "demo"}).status_code
            == 201
        )
        yield client, headers, settings


def test_workflows_from_yaml_and_json_with_validation(api: Any) -> None:
    """A YAML push and an equal JSON push make one version; validate reports located problems."""
    client, headers, _ = api
    first = push_as_admin(client, FLAKY)
    assert (first.status_code, first.json()["version"], first.json()["created"]) == (201, 1, True)
    assert first.json()["trusted"] is True
    spec = client.get("/api/v1/projects/demo/workflows/flaky", headers=headers).json()["spec"]
    again = client.post("/api/v1/projects/demo/workflows", headers=ADMIN, json={"spec": spec})
    assert (again.json()["version"], again.json()["created"]) == (1, False)
    versions = client.get("/api/v1/projects/demo/workflows/flaky/versions", headers=headers).json()
    assert [v["version"] for v in versions] == [1]
    broken = "name: x\nsteps:\n  - id: a\n    kind: shel\n"
    checked = client.post(
        "/api/v1/workflows/validate", headers=headers, json={"source": broken}
    ).json()
    assert checked["valid"] is False
    assert checked["problems"][0]["line"] == 4
    assert "did you mean 'shell'" in checked["problems"][0]["message"]
    bad_push = client.post(
        "/api/v1/projects/demo/workflows", headers=headers, json={"source": broken}
    )
    assert bad_push.status_code == 422
    assert "workflow.yaml:4:11" in bad_push.json()["detail"]


def test_runs_dlq_resume_fork_and_cancel(api: Any, drain: Drain, tmp_path: Path) -> None:
    """A run fails into the DLQ; requeue by filter after the fix completes it; fork reuses
    outputs; a queued run is cancelled; bad inputs are refused with the reason."""
    client, headers, settings = api
    push_as_admin(client, FLAKY)
    marker = tmp_path / "ok"
    refused = client.post("/api/v1/projects/demo/runs", headers=headers, json={"workflow": "flaky"})
    assert refused.status_code == 422
    assert "input 'marker' is required" in refused.json()["detail"]
    start = {"workflow": "flaky", "inputs": {"marker": str(marker)}}
    run_id = client.post("/api/v1/projects/demo/runs", headers=headers, json=start).json()["run_id"]
    drain(settings=settings)
    assert client.get(f"/api/v1/runs/{run_id}", headers=headers).json()["status"] == "failed"
    dead = client.get("/api/v1/dlq", headers=headers, params={"workflow": "flaky"}).json()
    assert [d["step_key"] for d in dead] == ["check"]
    marker.touch()
    requeued = client.post("/api/v1/dlq/requeue", headers=headers, json={"workflow": "flaky"})
    assert requeued.json()["requeued"] == [dead[0]["id"]]
    drain(settings=settings)
    assert client.get(f"/api/v1/runs/{run_id}", headers=headers).json()["status"] == "succeeded"
    fork = client.post(f"/api/v1/runs/{run_id}/fork", headers=headers, json={"from_step": "after"})
    fork_id = fork.json()["run_id"]
    forked = client.get(f"/api/v1/runs/{fork_id}", headers=headers).json()
    assert {s["step_key"]: s["status"] for s in forked["steps"]}["check"] == "succeeded"  # reused
    waiting = client.post("/api/v1/projects/demo/runs", headers=headers, json=start).json()[
        "run_id"
    ]
    cancelled = client.post(f"/api/v1/runs/{waiting}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    conflict = client.post(f"/api/v1/runs/{waiting}/cancel", headers=headers)
    assert conflict.status_code == 409
    listed = client.get("/api/v1/runs", headers=headers, params={"status": "cancelled"}).json()
    assert [r["id"] for r in listed] == [waiting]


def test_queues_workers_schedules(api: Any) -> None:
    """Queue depth and the oldest ready step's age; the workflow's schedule can be paused,
    resumed and fired."""
    client, headers, _ = api
    push_as_admin(client, FLAKY)
    start = {"workflow": "flaky", "inputs": {"marker": "/nonexistent"}}
    client.post("/api/v1/projects/demo/runs", headers=headers, json=start)
    (queue,) = client.get("/api/v1/queues", headers=headers).json()
    assert (queue["name"], queue["ready"]) == ("default", 1)
    assert queue["oldest_ready_age_seconds"] >= 0
    assert client.get("/api/v1/workers", headers=ADMIN).json() == []
    assert client.get("/api/v1/workers", headers=headers).status_code == 403  # admins only
    (schedule,) = client.get("/api/v1/schedules", headers=headers).json()
    name = schedule["name"]
    assert (name, schedule["cron"], schedule["enabled"]) == ("demo/flaky", "0 4 * * *", True)
    assert (
        client.post(f"/api/v1/schedules/{name}/disable", headers=headers).json()["enabled"] is False
    )
    assert (
        client.post(f"/api/v1/schedules/{name}/enable", headers=headers).json()["enabled"] is True
    )
    fired = client.post(f"/api/v1/schedules/{name}/trigger", headers=headers)
    assert fired.status_code == 422  # the schedule gives no marker: the run is refused, said why
    assert "input 'marker' is required" in fired.json()["detail"]


def test_knowledge_upload_search_delete(api: Any, drain: Drain) -> None:
    """Uploaded documents are ingested by a run, found by search, and deleted."""
    client, headers, settings = api
    files = [
        (
            "files",
            ("billing.md", b"Invoices are due thirty days after they are sent.\n", "text/markdown"),
        ),
        ("files", ("fake.pdf", b"not a pdf at all", "application/pdf")),
    ]
    uploaded = client.post("/api/v1/projects/demo/documents", headers=headers, files=files).json()
    assert [d["name"] for d in uploaded["documents"]] == ["billing.md"]
    assert uploaded["refused"][0]["name"] == "fake.pdf"
    drain(settings=settings)
    (document,) = client.get("/api/v1/projects/demo/documents", headers=headers).json()
    assert document["status"] == "ready"
    hits = client.post(
        "/api/v1/projects/demo/search", headers=headers, json={"query": "when must I pay"}
    ).json()
    assert hits[0]["document"] == "billing.md"
    deleted = client.delete(f"/api/v1/projects/demo/documents/{document['id']}", headers=headers)
    assert deleted.status_code == 204
    assert client.get("/api/v1/projects/demo/documents", headers=headers).json() == []


def test_state_changes_are_audited(api: Any) -> None:
    """Each change made through the API leaves an audit entry with its actor and address."""
    client, headers, _ = api
    quiet = "name: quiet\nsteps: [{id: a, kind: noop}]\n"
    assert (
        client.post(
            "/api/v1/projects/demo/workflows", headers=headers, json={"source": quiet}
        ).status_code
        == 201
    )
    client.patch("/api/v1/projects/demo", headers=headers, json={"description": "d"})
    entries = client.get("/api/v1/audit", headers=ADMIN).json()
    actions = [e["action"] for e in entries]
    for action in (
        "user.create",
        "auth.login",
        "project.create",
        "workflow.push",
        "project.update",
    ):
        assert action in actions
    push = next(e for e in entries if e["action"] == "workflow.push")
    assert push["actor_type"] == "user"
    assert push["target_id"] == "quiet@1"
    assert push["details"]["trusted"] is False
    assert push["ip"]


def test_members_see_only_their_own_share_of_queues(api: Any) -> None:
    """Another member's queued steps are not counted in what a member sees of /queues, nor
    are queues only other projects use listed."""
    client, headers, _ = api
    body = {"email": "bob@example.com", "password": "a long password here"}
    client.post("/api/v1/auth/register", json=body)
    token = client.post("/api/v1/auth/login", json=body).json()["access_token"]
    bob = {"Authorization": f"Bearer {token}"}
    client.post("/api/v1/projects", headers=bob, json={"name": "bobs"})
    other = "name: other\nqueue: private-q\nsteps: [{id: a, kind: noop}]\n"
    mine = "name: mine\nsteps: [{id: a, kind: noop}]\n"
    client.post("/api/v1/projects/bobs/workflows", headers=bob, json={"source": other})
    client.post("/api/v1/projects/demo/workflows", headers=headers, json={"source": mine})
    for _ in range(3):
        client.post("/api/v1/projects/bobs/runs", headers=bob, json={"workflow": "other"})
    client.post("/api/v1/projects/demo/runs", headers=headers, json={"workflow": "mine"})
    seen = {q["name"]: q["ready"] for q in client.get("/api/v1/queues", headers=headers).json()}
    assert seen == {"default": 1}
    everything = {q["name"]: q["ready"] for q in client.get("/api/v1/queues", headers=ADMIN).json()}
    assert everything == {"default": 1, "private-q": 3}
