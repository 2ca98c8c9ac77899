"""What the web pages need from /api/v1, on SQLite and PostgreSQL: runs by several statuses and
a time range with their step counts, bulk cancel and resume by ids or by filter within what the
caller may see, and events by step, type and level."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from awe.api.app import create_app
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.services import auth
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain

ADMIN = "lists-admin-token-0123456789abcdefghij"
PASSWORD = "a long enough password"
TWO = {
    "name": "two",
    "steps": [
        {"id": "a", "kind": "noop"},
        {"id": "b", "kind": "noop", "needs": ["a"], "with": {"v": "{{ 1 // 0 }}"}},
    ],
}


@pytest.fixture
def client(database: Database, tmp_path: Path) -> Iterator[TestClient]:
    """The API with an admin token."""
    settings: Settings = make_settings(tmp_path, admin_token=ADMIN)
    with TestClient(create_app(settings, db=database)) as made:
        yield made


def bearer(client: TestClient, email: str) -> dict[str, str]:
    """A member's Authorization, with a project named after them."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    client.post("/api/v1/users", headers=admin, json={"email": email, "password": PASSWORD})
    token = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    header = {"Authorization": f"Bearer {token.json()['access_token']}"}
    name = email.split("@")[0]
    assert client.post("/api/v1/projects", headers=header, json={"name": name}).status_code == 201
    source = "name: two\nsteps:\n  - {id: a, kind: noop}\n"
    pushed = client.post(
        f"/api/v1/projects/{name}/workflows", headers=header, json={"source": source}
    )
    assert pushed.status_code == 201, pushed.text
    return header


def start(client: TestClient, header: dict[str, str], project: str) -> str:
    """Start the project's workflow; the run id."""
    answer = client.post(
        f"/api/v1/projects/{project}/runs", headers=header, json={"workflow": "two"}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["run_id"])


def test_runs_by_several_statuses_and_a_time_range_with_step_counts(
    client: TestClient, engine: Engine, drain: Drain
) -> None:
    """?status=a&status=b gives runs in either; since/until (a time without a zone is UTC)
    bound the creation time; each row counts its steps by state; an unknown status is 422."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    failed = engine.submit(TWO)
    drain()
    queued = engine.submit(TWO)
    rows = client.get("/api/v1/runs?status=failed&status=queued", headers=admin).json()
    assert {r["id"] for r in rows} == {failed, queued}
    counts = {r["id"]: r["step_counts"] for r in rows}
    assert counts[failed] == {"succeeded": 1, "dead": 1}
    assert counts[queued] == {"queued": 1, "pending": 1}
    only_failed = client.get("/api/v1/runs?status=failed", headers=admin).json()
    assert [r["id"] for r in only_failed] == [failed]
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert client.get(f"/api/v1/runs?since={later}", headers=admin).json() == []
    assert len(client.get(f"/api/v1/runs?until={later}", headers=admin).json()) == 2
    wrong = client.get("/api/v1/runs?status=exploded", headers=admin)
    assert wrong.status_code == 422
    assert "is not one of" in wrong.json()["detail"]


def test_bulk_cancel_and_resume_stay_within_what_the_caller_sees(
    client: TestClient, database: Database
) -> None:
    """A member's cancel by filter cancels their own runs only; naming another member's run is
    404 and changes nothing; runs already finished are skipped with the reason."""
    alice = bearer(client, "alice@example.com")
    bob = bearer(client, "bob@example.com")
    mine = [start(client, alice, "alice") for _ in range(2)]
    theirs = start(client, bob, "bob")
    refused = client.post("/api/v1/runs/cancel", headers=alice, json={"run_ids": [theirs]})
    assert refused.status_code == 404
    done = client.post(
        "/api/v1/runs/cancel", headers=alice, json={"filter": {"statuses": ["queued"]}}
    ).json()
    assert sorted(done["done"]) == sorted(mine)
    assert client.get(f"/api/v1/runs/{theirs}", headers=bob).json()["status"] == "queued"
    again = client.post("/api/v1/runs/cancel", headers=alice, json={"run_ids": mine}).json()
    assert again["done"] == []
    assert set(again["skipped"]) == set(mine)
    resumed = client.post("/api/v1/runs/resume", headers=alice, json={"run_ids": mine}).json()
    assert sorted(resumed["done"]) == sorted(mine)
    both = client.post(
        "/api/v1/runs/cancel", headers=alice, json={"run_ids": mine, "filter": {"statuses": []}}
    )
    assert both.status_code == 422
    assert auth.list_users(database)  # the users the test made are there


def test_events_by_step_type_and_level(client: TestClient, engine: Engine, drain: Drain) -> None:
    """Events can be read for some steps, some types and some levels only."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    run_id = engine.submit(TWO)
    drain()
    url = f"/api/v1/runs/{run_id}/events"
    of_b = client.get(f"{url}?step=b", headers=admin).json()
    assert of_b
    assert {e["step_key"] for e in of_b} == {"b"}
    errors = client.get(f"{url}?level=error&type=state", headers=admin).json()
    assert errors
    assert all(e["level"] == "error" and e["type"] == "state" for e in errors)
    everything = client.get(url, headers=admin).json()
    assert len(everything) > len(of_b)
