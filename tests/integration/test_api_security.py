"""The API's security: tokens that must be refused, revocation, rotation, lockouts, isolation
between users' projects, admin-only endpoints, Argon2id hashes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from awe.api.app import create_app
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.services import signing
from awe.storage.database import Database
from awe.storage.models import User
from tests.conftest import make_settings
from tests.integration.conftest import Drain

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PASSWORD = "correct horse battery"
# What a member may push: no privileged kind. It fails at once (loopback is not allowed).
WORKFLOW = """\
name: hello
steps:
  - id: say
    kind: http
    retry: {max_attempts: 1}
    with: {url: "http://127.0.0.1:9/"}
"""


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """Settings with an admin token and a quick lockout."""
    return make_settings(
        tmp_path,
        admin_token="admin-token-for-tests-0123456789",
        login_max_failures=3,
        registration_open=True,
    )


@pytest.fixture
def client(database: Database, api_settings: Settings) -> Iterator[TestClient]:
    """The app on the test's database."""
    with TestClient(create_app(api_settings, db=database)) as test_client:
        yield test_client


def signup(client: TestClient, email: str) -> dict[str, str]:
    """Register and log in; the Authorization header of the new user."""
    assert (
        client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        ).status_code
        == 201
    )
    tokens = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    return {
        "Authorization": f"Bearer {tokens['access_token']}",
        "X-Refresh": tokens["refresh_token"],
    }


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def me(client: TestClient, headers: dict[str, str]) -> int:
    """The status of GET /auth/me with these headers."""
    return client.get(
        "/api/v1/auth/me", headers={"Authorization": headers["Authorization"]}
    ).status_code


def test_register_login_me_and_argon2id_hash(client: TestClient, database: Database) -> None:
    """A registered user logs in and sees themselves; the stored hash is Argon2id."""
    headers = signup(client, "ada@example.com")
    body = client.get("/api/v1/auth/me", headers=bearer(headers["Authorization"][7:])).json()
    assert (body["email"], body["role"]) == ("ada@example.com", "member")
    with database.read() as conn:
        stored = conn.execute(select(User.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_tampered_expired_and_alg_none_tokens_are_refused(
    client: TestClient, api_settings: Settings, database: Database
) -> None:
    """A changed signature, an expired token, alg=none, a refresh token as access: all 401."""
    headers = signup(client, "ada@example.com")
    token = headers["Authorization"][7:]
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    claims = jwt.decode(token, options={"verify_signature": False})
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps({**claims, "role": "admin"}).encode())
        .rstrip(b"=")
        .decode()
    )
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    secret = signing.signing_secret(database, api_settings)
    expired = jwt.encode(
        {**claims, "exp": utcnow() - timedelta(minutes=1)}, secret, algorithm="HS256"
    )
    for bad in (
        f"{head}.{payload}.{flipped}",
        f"{head}.{forged_payload}.{signature}",
        f"{none_header}.{payload}.",
        expired,
        headers["X-Refresh"],
        "not-a-token",
    ):
        response = client.get("/api/v1/auth/me", headers=bearer(bad))
        assert response.status_code == 401, bad
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/v1/auth/me").status_code == 401  # no header at all
    kinds = [e["kind"] for e in client.get("/api/v1/security-events", headers=admin()).json()]
    assert {"token_invalid", "token_expired", "token_misuse"} <= set(kinds)


def normal(text: str, ids: dict[str, str]) -> str:
    """``text`` with the given ids replaced by placeholders."""
    for value, placeholder in ids.items():
        text = text.replace(value, placeholder)
    return text


def admin() -> dict[str, str]:
    """The admin token's header."""
    return bearer("admin-token-for-tests-0123456789")


def test_logout_and_password_change_revoke_tokens(client: TestClient) -> None:
    """After logout the access token is refused at once; a password change ends every session."""
    first = signup(client, "ada@example.com")
    second_login = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).json()
    second = {"Authorization": f"Bearer {second_login['access_token']}"}
    assert (
        client.post(
            "/api/v1/auth/logout", headers={"Authorization": first["Authorization"]}
        ).status_code
        == 204
    )
    assert me(client, first) == 401
    assert me(client, second) == 200  # another session is untouched
    changed = client.post(
        "/api/v1/auth/password",
        headers=second,
        json={"current_password": PASSWORD, "new_password": "an even better passphrase"},
    )
    assert changed.status_code == 204
    assert me(client, second) == 401
    refreshed = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second_login["refresh_token"]}
    )
    assert refreshed.status_code == 401


def test_refresh_rotates_and_reuse_ends_the_session(client: TestClient) -> None:
    """A refresh token works once; presenting it again revokes the whole session."""
    headers = signup(client, "ada@example.com")
    first = client.post("/api/v1/auth/refresh", json={"refresh_token": headers["X-Refresh"]})
    assert first.status_code == 200
    fresh = first.json()
    assert me(client, {"Authorization": f"Bearer {fresh['access_token']}"}) == 200
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": headers["X-Refresh"]})
    assert replay.status_code == 401
    assert me(client, {"Authorization": f"Bearer {fresh['access_token']}"}) == 401
    kinds = [e["kind"] for e in client.get("/api/v1/security-events", headers=admin()).json()]
    assert "refresh_token_reuse" in kinds


def test_rotating_the_secret_logs_everyone_out(
    client: TestClient, api_settings: Settings, database: Database
) -> None:
    """After the signing secret is rotated, tokens issued before are refused."""
    headers = signup(client, "ada@example.com")
    assert me(client, headers) == 200
    signing.rotate(database, api_settings)
    assert me(client, headers) == 401
    again = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert me(client, {"Authorization": f"Bearer {again.json()['access_token']}"}) == 200


def test_personal_tokens_work_until_revoked(client: TestClient, database: Database) -> None:
    """A personal token authenticates; it is stored hashed; once revoked it is refused."""
    headers = {"Authorization": signup(client, "ada@example.com")["Authorization"]}
    created = client.post("/api/v1/tokens", headers=headers, json={"name": "ci"}).json()
    token = created["token"]
    assert token.startswith("awe_pat_")
    assert me(client, bearer(token)) == 200
    listed = client.get("/api/v1/tokens", headers=headers).json()
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0]
    from awe.storage.auth_models import ApiToken

    with database.read() as conn:
        assert token not in str(conn.execute(select(ApiToken.__table__)).all())
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=headers).status_code == 204
    assert me(client, bearer(token)) == 401


def test_brute_force_locks_out_across_processes(
    client: TestClient, database: Database, api_settings: Settings
) -> None:
    """Three wrong passwords lock the account: even the right one is refused (429 with
    Retry-After), by another API process on the same database too."""
    signup(client, "ada@example.com")
    for _ in range(3):
        wrong = client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": "nope"}
        )
        assert wrong.status_code == 401
    locked = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    with TestClient(create_app(api_settings, db=database)) as other_process:
        again = other_process.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert again.status_code == 429
    kinds = [e["kind"] for e in client.get("/api/v1/security-events", headers=admin()).json()]
    assert {"login_failed", "lockout", "login_locked"} <= set(kinds)


def test_members_cannot_reach_each_others_projects(
    client: TestClient, drain: Drain, api_settings: Settings
) -> None:
    """Everything of user A's project is 'not found' to user B, by id: project, workflows,
    runs, events, dead letters, documents, schedules, search."""
    a = {"Authorization": signup(client, "a@example.com")["Authorization"]}
    b = {"Authorization": signup(client, "b@example.com")["Authorization"]}
    project = client.post("/api/v1/projects", headers=a, json={"name": "alpha"}).json()
    pid = project["id"]
    pushed = client.post(f"/api/v1/projects/{pid}/workflows", headers=a, json={"source": WORKFLOW})
    assert pushed.status_code == 201, pushed.text
    run_id = client.post(
        f"/api/v1/projects/{pid}/runs", headers=a, json={"workflow": "hello"}
    ).json()["run_id"]
    drain(settings=api_settings)
    upload = client.post(
        f"/api/v1/projects/{pid}/documents",
        headers=a,
        files={"files": ("notes.txt", b"Invoices are due in thirty days.\n", "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    document_id = upload.json()["documents"][0]["id"]
    denied: list[tuple[str, str, Any]] = [
        ("GET", f"/api/v1/projects/{pid}", None),
        ("PATCH", f"/api/v1/projects/{pid}", {"description": "mine now"}),
        ("DELETE", f"/api/v1/projects/{pid}", None),
        ("GET", f"/api/v1/projects/{pid}/workflows", None),
        ("GET", f"/api/v1/projects/{pid}/workflows/hello", None),
        ("POST", f"/api/v1/projects/{pid}/runs", {"workflow": "hello"}),
        ("GET", f"/api/v1/runs/{run_id}", None),
        ("GET", f"/api/v1/runs/{run_id}/events", None),
        ("GET", f"/api/v1/runs/{run_id}/events/stream", None),
        ("POST", f"/api/v1/runs/{run_id}/resume", None),
        ("POST", f"/api/v1/runs/{run_id}/fork", {"from_step": "say"}),
        ("GET", f"/api/v1/projects/{pid}/documents", None),
        ("DELETE", f"/api/v1/projects/{pid}/documents/{document_id}", None),
        ("POST", f"/api/v1/projects/{pid}/search", {"query": "invoices"}),
    ]
    ids = {pid: "P", run_id: "R", document_id: "D"}
    fake = {pid: str(uuid.uuid4()), run_id: str(uuid.uuid4()), document_id: str(uuid.uuid4())}
    for method, path, body in denied:
        response = client.request(method, path, headers=b, json=body)
        assert response.status_code == 404, (method, path, response.status_code)
        # No existence leak: the same answer as for ids that exist nowhere.
        missing_path = path
        for real, other in fake.items():
            missing_path = missing_path.replace(real, other)
        missing = client.request(method, missing_path, headers=b, json=body)
        assert missing.status_code == 404
        placeholders = {v: ids[k] for k, v in fake.items()}
        assert normal(response.json()["detail"], ids) == normal(
            missing.json()["detail"], placeholders
        )
    assert client.get("/api/v1/runs", headers=b).json() == []
    assert client.get("/api/v1/dlq", headers=b).json() == []
    assert [s["run_id"] for s in client.get("/api/v1/dlq", headers=a).json()] == [run_id]
    dead = client.get("/api/v1/dlq", headers=a).json()[0]["id"]
    assert client.post(f"/api/v1/dlq/{dead}/requeue", headers=b).status_code == 404
    assert client.get("/api/v1/projects", headers=b).json() == []
    assert client.get(f"/api/v1/runs/{run_id}", headers=a).status_code == 200


def test_admin_endpoints_need_the_admin_role_or_token(
    client: TestClient, database: Database
) -> None:
    """Members get 403 on admin endpoints; an admin user and the admin token get through, and
    admins see every project."""
    member = {"Authorization": signup(client, "m@example.com")["Authorization"]}
    client.post("/api/v1/projects", headers=member, json={"name": "members-own"})
    for path in ("/api/v1/audit", "/api/v1/security-events", "/api/v1/users"):
        assert client.get(path, headers=member).status_code == 403
        assert client.get(path, headers=admin()).status_code == 200
    created = client.post(
        "/api/v1/users",
        headers=admin(),
        json={"email": "boss@example.com", "password": PASSWORD, "role": "admin"},
    )
    assert created.status_code == 201
    login = client.post(
        "/api/v1/auth/login", json={"email": "boss@example.com", "password": PASSWORD}
    )
    boss = bearer(login.json()["access_token"])
    assert client.get("/api/v1/audit", headers=boss).status_code == 200
    assert [p["name"] for p in client.get("/api/v1/projects", headers=boss).json()] == [
        "members-own"
    ]
    actions = {e["action"] for e in client.get("/api/v1/audit", headers=admin()).json()}
    assert {"user.create", "auth.login", "project.create"} <= actions


def test_closed_registration_and_request_ids(database: Database, tmp_path: Path) -> None:
    """With registration closed, register is 403; every answer carries request and trace ids,
    and a caller's traceparent is kept."""
    settings = make_settings(tmp_path, registration_open=False)
    with TestClient(create_app(settings, db=database)) as client:
        response = client.post(
            "/api/v1/auth/register",
            json={"email": "x@example.com", "password": PASSWORD},
            headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        )
        assert response.status_code == 403
        assert response.headers["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert response.headers["x-request-id"]
        too_big = client.post(
            "/api/v1/auth/login",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
        )
        assert too_big.status_code == 413
