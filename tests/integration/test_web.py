"""The web UI's guards, on SQLite and PostgreSQL: browser sessions tied to login sessions,
CSRF, the Content-Security-Policy, redirects that stay on the site, and the same authorization
as the API on every page, fragment, download and action."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from awe.api.app import create_app
from awe.core.config import Settings
from awe.core.errors import Conflict
from awe.engine.client import Engine
from awe.services import auth, projects, signing, workflows
from awe.services.audit import SYSTEM
from awe.services.tokens import Principal
from awe.storage.database import Database
from awe.storage.engine_models import Run
from awe.web import render
from tests.conftest import make_settings
from tests.integration.conftest import Drain

PASSWORD = "a long enough password"
SAME = {"Sec-Fetch-Site": "same-origin"}
SLOW = """name: slow
steps:
  - id: nap
    kind: sleep
    with: {seconds: 60}
"""
PAGES = ["/", "/runs", "/dead-letters", "/queues", "/schedules", "/workflows", "/knowledge"]


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    """Settings of a test server."""
    return make_settings(tmp_path)


@pytest.fixture
def app_client(database: Database, web_settings: Settings) -> Iterator[TestClient]:
    """The app over the test's database (no worker: runs stay where they are)."""
    with TestClient(create_app(web_settings, db=database)) as client:
        yield client


def member(database: Database, email: str, project: str) -> tuple[Principal, str]:
    """A member owning a project with a slow run started in it: (principal, run id)."""
    user = auth.create_user(database, email=email, password=PASSWORD, actor=SYSTEM)
    principal = Principal("user", user.id, "member")
    made = projects.create(database, principal, name=project, actor=SYSTEM)
    workflows.push_source(database, SLOW, project=made.name, principal=principal, actor=SYSTEM)
    stored = workflows.get(database, "slow", project=made.name)
    run_id = Engine(database).submit(stored.spec, project_id=made.id, workflow_version=1)
    return principal, run_id


def log_in(client: TestClient, email: str) -> str:
    """Log in through the form; the page's CSRF token."""
    answer = client.post(
        "/login", data={"email": email, "password": PASSWORD}, headers=SAME, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert found is not None
    return found.group(1)


def run_status(database: Database, run_id: str) -> str:
    """A run's status, read from the database."""
    with database.read() as conn:
        return str(conn.execute(select(Run.status).where(Run.id == run_id)).scalar_one())


def test_every_page_needs_a_session_and_carries_a_strict_policy(
    database: Database, app_client: TestClient
) -> None:
    """Without a session every page sends the browser to log in (and back after); with one,
    every page answers 200 with a CSP that allows no inline script or style, no framing."""
    for path in PAGES:
        answer = app_client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")
    member(database, "ada@example.com", "alpha")
    log_in(app_client, "ada@example.com")
    for path in [*PAGES, "/account", "/login"]:
        answer = app_client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert "<script>" not in answer.text, path
        assert " style=" not in answer.text, path


def test_unsafe_requests_from_elsewhere_or_without_the_token_are_refused(
    database: Database, app_client: TestClient
) -> None:
    """A cross-site form post, a post from another origin and a post without the session's
    token are all refused (403) and cancel nothing; the same post from the page works."""
    _, run_id = member(database, "ada@example.com", "alpha")
    token = log_in(app_client, "ada@example.com")
    attempts = [
        ({"Sec-Fetch-Site": "cross-site"}, {"csrf": token}),
        ({"Sec-Fetch-Site": "same-site"}, {"csrf": token}),
        ({"Origin": "https://evil.example"}, {"csrf": token}),
        ({"Origin": "null"}, {"csrf": token}),
        (SAME, {}),
        (SAME, {"csrf": "0" * 40}),
    ]
    for headers, form in attempts:
        answer = app_client.post(f"/runs/{run_id}/cancel", data=form, headers=headers)
        assert answer.status_code == 403, (headers, form)
        assert run_status(database, run_id) == "queued"
    done = app_client.post(
        f"/runs/{run_id}/cancel", data={"csrf": token}, headers=SAME, follow_redirects=False
    )
    assert done.status_code == 303
    assert run_status(database, run_id) == "cancelled"


def test_the_log_in_form_refuses_a_cross_site_post(
    database: Database, app_client: TestClient
) -> None:
    """Another site cannot log a visitor in to an account of its choosing (login CSRF)."""
    member(database, "ada@example.com", "alpha")
    answer = app_client.post(
        "/login",
        data={"email": "ada@example.com", "password": PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert "awe_session" not in answer.cookies


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "x"],
)
def test_after_logging_in_the_browser_never_leaves_the_site(
    database: Database, app_client: TestClient, target: str
) -> None:
    """``next=`` that is not a path on this site sends the browser home instead."""
    member(database, "ada@example.com", "alpha")
    answer = app_client.post(
        "/login",
        data={"email": "ada@example.com", "password": PASSWORD, "next": target},
        headers=SAME,
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


def test_the_cookie_is_a_login_session_and_nothing_more(
    database: Database, app_client: TestClient, web_settings: Settings
) -> None:
    """The session cookie is HttpOnly and SameSite=Lax; the API refuses it as a bearer token;
    an API access token is not a cookie; logging out, changing the password and rotating the
    signing secret each end the browser session."""
    member(database, "ada@example.com", "alpha")
    answer = app_client.post(
        "/login",
        data={"email": "ada@example.com", "password": PASSWORD},
        headers=SAME,
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    value = app_client.cookies["awe_session"]
    api = app_client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {value}"})
    assert api.status_code == 401
    login = app_client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    access = login.json()["access_token"]
    with TestClient(app_client.app, cookies={"awe_session": access}) as other:
        assert other.get("/runs", follow_redirects=False).status_code == 303

    def ended(cookie: str) -> bool:
        with TestClient(app_client.app, cookies={"awe_session": cookie}) as holder:
            return holder.get("/runs", follow_redirects=False).status_code == 303

    def session() -> tuple[TestClient, str, str]:
        client = TestClient(app_client.app)
        token = log_in(client, "ada@example.com")
        cookie = client.cookies["awe_session"]
        assert not ended(cookie)
        return client, token, cookie

    client, token, cookie = session()
    client.post("/logout", data={"csrf": token}, headers=SAME)
    assert ended(cookie)  # kept by an attacker, it opens nothing
    client, token, cookie = session()
    client.post(
        "/account/password",
        data={"csrf": token, "current": PASSWORD, "new": PASSWORD * 2, "new_again": PASSWORD * 2},
        headers=SAME,
    )
    assert ended(cookie)
    client = TestClient(app_client.app)
    answer = client.post(
        "/login",
        data={"email": "ada@example.com", "password": PASSWORD * 2},
        headers=SAME,
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = client.cookies["awe_session"]
    assert not ended(cookie)
    signing.rotate(database, web_settings)
    assert ended(cookie)


def test_a_member_reaches_nothing_of_another_members_projects(
    database: Database, app_client: TestClient
) -> None:
    """Member B gets "not found" for A's run page, step page, fork dialog, live stream,
    downloads and actions, and none of A's runs in lists, fragments or counts; B's bulk cancel
    of "every matching run" leaves A's run running, and naming A's run in it is refused."""
    _, run_a = member(database, "a@example.com", "alpha")
    _, run_b = member(database, "b@example.com", "beta")
    token = log_in(app_client, "b@example.com")
    for path in (
        f"/runs/{run_a}",
        f"/runs/{run_a}/steps/nap",
        f"/runs/{run_a}/fork?from_step=nap",
        f"/runs/{run_a}/live",
        f"/runs/{run_a}/inputs.json",
        f"/runs/{run_a}/steps/nap/output.json",
        f"/runs/{run_a}/events.jsonl",
        "/workflows/slow?project=alpha",
        "/knowledge?project=alpha",
    ):
        assert app_client.get(path).status_code == 404, path
    for path in (f"/runs/{run_a}/cancel", f"/runs/{run_a}/resume"):
        assert app_client.post(path, data={"csrf": token}, headers=SAME).status_code == 404
    for path in ("/runs", "/runs/rows", "/", "/queues/live"):
        page = app_client.get(path).text
        assert run_a not in page, path
        assert "alpha" not in page, path
    assert run_b in app_client.get("/runs").text
    refused = app_client.post(
        "/runs/bulk",
        data={"csrf": token, "action": "cancel", "run_ids": [run_a, run_b], "confirm": "yes"},
        headers=SAME,
    )
    assert refused.status_code == 404
    assert run_status(database, run_b) == "queued"
    done = app_client.post(
        "/runs/bulk",
        data={"csrf": token, "action": "cancel", "scope": "filter", "confirm": "yes"},
        headers=SAME,
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "1 run cancelled." in app_client.get(done.headers["location"]).text
    assert run_status(database, run_b) == "cancelled"
    assert run_status(database, run_a) == "queued"


def test_members_cannot_use_the_admin_pages(database: Database, app_client: TestClient) -> None:
    """A member gets 403 for the admin page and its actions; no user is created or changed."""
    principal, _ = member(database, "m@example.com", "alpha")
    token = log_in(app_client, "m@example.com")
    assert app_client.get("/admin").status_code == 403
    created = app_client.post(
        "/admin/users",
        data={"csrf": token, "email": "x@example.com", "password": PASSWORD, "role": "admin"},
        headers=SAME,
    )
    assert created.status_code == 403
    assert principal.user_id is not None
    promoted = app_client.post(
        f"/admin/users/{principal.user_id}", data={"csrf": token, "change": "admin"}, headers=SAME
    )
    assert promoted.status_code == 403
    assert [u.email for u in auth.list_users(database)] == ["m@example.com"]
    assert auth.get_user(database, principal.user_id).role == "member"


def test_the_last_admin_stays_an_admin(database: Database) -> None:
    """Demoting or deactivating the only active admin is refused; with a second admin, it is
    allowed, and a deactivated user's sessions end."""
    first = auth.create_user(
        database, email="a@example.com", password=PASSWORD, role="admin", actor=SYSTEM
    )
    with pytest.raises(Conflict, match="last active admin"):
        auth.update_user(database, first.id, role="member", actor=SYSTEM)
    with pytest.raises(Conflict, match="last active admin"):
        auth.update_user(database, first.id, is_active=False, actor=SYSTEM)
    auth.create_user(database, email="b@example.com", password=PASSWORD, role="admin", actor=SYSTEM)
    assert auth.update_user(database, first.id, is_active=False, actor=SYSTEM).is_active is False


def test_errors_are_pages_on_pages_and_problems_on_the_api(
    database: Database, app_client: TestClient
) -> None:
    """An unknown page is an HTML 404 page; an unknown API path stays problem+json; an
    invalid filter says what was wrong, without a trace."""
    member(database, "ada@example.com", "alpha")
    log_in(app_client, "ada@example.com")
    page = app_client.get("/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    api = app_client.get("/api/v1/no-such-thing")
    assert api.headers["content-type"] == "application/problem+json"
    wrong = app_client.get("/runs?status=exploded")
    assert wrong.status_code == 422
    assert "is not one of" in wrong.text
    assert "Traceback" not in wrong.text
    bad_time = app_client.get("/runs?since=yesterday")
    assert bad_time.status_code == 422
    assert "write it like 2026-12-01T10:30" in bad_time.text


def test_the_vendored_scripts_are_the_pinned_ones() -> None:
    """htmx and its SSE extension are the files fetched with npm pack, with their licences."""
    vendor = render.HERE / "static" / "vendor"
    digests = {n: hashlib.sha256((vendor / n).read_bytes()).hexdigest() for n in VENDORED}
    assert digests == VENDORED
    assert (vendor / "htmx-LICENSE.txt").read_text().startswith("Zero-Clause BSD")
    assert "BSD Zero Clause" in (vendor / "htmx-ext-sse-LICENSE.txt").read_text()


#: sha256 of the files of `npm pack htmx.org@2.0.11` (dist/htmx.min.js) and
#: `npm pack htmx-ext-sse@2.2.4` (sse.js).
VENDORED = {
    "htmx-2.0.11.min.js": "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    "htmx-ext-sse-2.2.4.js": "3b5992a541619babefc4c169505af474df5c3039da51e59b96ccf9241ecd61d2",
}


def test_requeue_every_match_leaves_steps_that_died_after_the_preview(
    database: Database, app_client: TestClient, drain: Drain
) -> None:
    """The preview counts the dead steps matching; steps that die after it was shown are not
    requeued by its button; requeueing selected steps takes only those, and a selected step
    that is no longer dead is refused as not found."""
    auth.create_user(
        database, email="root@example.com", password=PASSWORD, role="admin", actor=SYSTEM
    )
    engine = Engine(database)
    broken = {
        "name": "broken",
        "steps": [
            {
                "id": "boom",
                "kind": "shell",
                "retry": {"max_attempts": 1},
                "with": {"command": "exit 3"},
            }
        ],
    }
    first = engine.submit(broken)
    drain()
    token = log_in(app_client, "root@example.com")
    preview = app_client.post(
        "/dead-letters/requeue", data={"csrf": token, "scope": "filter"}, headers=SAME
    )
    assert preview.status_code == 200
    assert "<strong>1</strong> dead step" in preview.text
    found = re.search(r'name="as_of" value="([^"]+)"', preview.text)
    assert found is not None
    later = engine.submit(broken)
    drain()
    done = app_client.post(
        "/dead-letters/requeue",
        data={"csrf": token, "scope": "filter", "confirm": "yes", "as_of": found.group(1)},
        headers=SAME,
    )
    assert "1 step(s) requeued." in done.text
    assert engine.get_run(first).step("boom").status == "queued"
    assert engine.get_run(later).step("boom").status == "dead"
    stale = engine.get_run(first).step("boom").id
    refused = app_client.post(
        "/dead-letters/requeue", data={"csrf": token, "step_ids": [stale]}, headers=SAME
    )
    assert refused.status_code == 404
    chosen = engine.get_run(later).step("boom").id
    picked = app_client.post(
        "/dead-letters/requeue", data={"csrf": token, "step_ids": [chosen]}, headers=SAME
    )
    assert "1 step(s) requeued." in picked.text
    assert engine.get_run(later).step("boom").status == "queued"
