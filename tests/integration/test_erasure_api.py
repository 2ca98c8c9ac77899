"""Erasure and right of access over the API: admins only (a member gets 403 and changes
nothing), a dry run, the real erasure's receipt, a bad request answered as a problem that says
what would be right."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from awe.api.app import create_app
from awe.core.config import Settings
from awe.services.subject_search import Subject, find
from awe.storage.database import Database
from tests.conftest import make_settings

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123456789"}
EMAIL = "grace.hopper@example.net"
PASSWORD = "correct horse battery"


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """Settings with an admin token and open registration."""
    return make_settings(tmp_path, admin_token=ADMIN["Authorization"].split()[1],
                         registration_open=True)  # fmt: skip


@pytest.fixture
def client(database: Database, api_settings: Settings) -> Iterator[TestClient]:
    """The app on the test's database."""
    with TestClient(create_app(api_settings, db=database)) as test_client:
        yield test_client


def member(client: TestClient, email: str) -> dict[str, str]:
    """Register and log in a member; their Authorization header."""
    assert client.post("/api/v1/auth/register",
                       json={"email": email, "password": PASSWORD}).status_code == 201  # fmt: skip
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_only_admins_search_and_erase(client: TestClient, database: Database) -> None:
    """A member asking to search for or erase someone gets 403, and the person is still
    there; the admin's dry run counts, the real erasure returns a verified receipt naming
    the subject by its hash only, and the account is gone."""
    member(client, EMAIL)
    other = member(client, "someone.else@example.net")
    body = {"email": EMAIL}
    assert client.post("/api/v1/admin/subject-search", json=body, headers=other).status_code == 403
    assert client.post("/api/v1/admin/erasures", json=body, headers=other).status_code == 403
    assert find(database, Subject((EMAIL,))).counts().get("users") == 1
    searched = client.post("/api/v1/admin/subject-search", json=body, headers=ADMIN)
    assert searched.status_code == 200
    assert searched.json()["tables"]["users"]["rows"] == 1
    preview = client.post("/api/v1/admin/erasures", json={**body, "dry_run": True}, headers=ADMIN)
    assert preview.status_code == 200
    assert preview.json()["tables"]["users"]["deleted"] == 1
    assert find(database, Subject((EMAIL,))).counts().get("users") == 1
    done = client.post("/api/v1/admin/erasures", json=body, headers=ADMIN)
    assert done.status_code == 200, done.text
    receipt = done.json()
    assert receipt["verified"] is True
    assert receipt["remaining"] == {}
    assert EMAIL not in done.text
    assert find(database, Subject((EMAIL,))).counts() == {}


def test_a_bad_request_is_a_problem_that_says_what_is_right(client: TestClient) -> None:
    """Two subjects at once, an unknown mode, an unknown field, a free-text value without the
    dry run's count: 422 problems naming the fault, never a traceback."""
    both = client.post("/api/v1/admin/erasures", json={"email": EMAIL, "value": "hopper"},
                       headers=ADMIN)  # fmt: skip
    assert both.status_code == 422
    assert "exactly one" in both.json()["detail"]
    mode = client.post("/api/v1/admin/erasures", json={"email": EMAIL, "mode": "shred"},
                       headers=ADMIN)  # fmt: skip
    assert mode.status_code == 422
    assert "mode" in mode.text
    extra = client.post("/api/v1/admin/erasures", json={"email": EMAIL, "cascade": True},
                        headers=ADMIN)  # fmt: skip
    assert extra.status_code == 422
    free_text = client.post("/api/v1/admin/erasures", json={"value": "Grace Hopper"},
                            headers=ADMIN)  # fmt: skip
    assert free_text.status_code == 422
    assert "expect" in free_text.json()["detail"]
    for answer in (both, mode, extra, free_text):
        assert "Traceback" not in answer.text
