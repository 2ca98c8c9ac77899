"""Authentication under pressure, on SQLite and PostgreSQL: parallel wrong passwords, garbage
tokens, deactivated users, the first admin's one-time setup link, project references that could
mean two projects, and settings that would be guessable."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from awe.api.app import create_app
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.errors import (
    AuthenticationFailed,
    Conflict,
    PermissionDenied,
    TooManyRequests,
    ValidationFailed,
)
from awe.services import audit, auth, projects, setup, throttle
from awe.services.audit import SYSTEM, Actor
from awe.services.tokens import OPERATOR
from awe.storage import instance_state
from awe.storage.auth_models import AuthThrottle, SecurityEvent
from awe.storage.database import Database
from awe.storage.models import User
from tests.conftest import make_settings

PASSWORD = "correct horse battery"


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    """Five failures lock an account; registration open for the tests that sign up."""
    return make_settings(tmp_path, login_max_failures=5, registration_open=True)


def at_once(
    database: Database,
    settings: Settings,
    logins: list[tuple[str, str]],
    password: str = "wrong guess",  # noqa: S107 - a test's wrong password
) -> Counter[str]:
    """Log in with every (email, ip) pair at the same moment, each with ``password``; how many
    ended in ok, 401, 429, or anything else (which is what these tests hunt)."""
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(logins))

    def guess(email: str, ip: str) -> None:
        start.wait()
        try:
            auth.login(
                database,
                settings,
                email=email,
                password=password,
                actor=Actor("anonymous", ip=ip),
            )
            result = "ok"
        except AuthenticationFailed:
            result = "401"
        except TooManyRequests:
            result = "429"
        except Exception as exc:  # noqa: BLE001 - anything else is the failure this test hunts
            result = f"error {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess, args=login) for login in logins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return Counter(outcomes)


def test_parallel_wrong_passwords_lock_after_exactly_the_limit(
    database: Database, api_settings: Settings
) -> None:
    """50 wrong passwords at once, from 50 addresses: exactly 5 are checked (401), the other 45
    are refused (429); nothing else goes wrong, and afterwards even the right password is
    refused."""
    auth.create_user(database, email="ada@example.com", password=PASSWORD, actor=SYSTEM)
    logins = [("ada@example.com", f"10.0.0.{n}") for n in range(50)]
    assert at_once(database, api_settings, logins) == {"401": 5, "429": 45}
    with pytest.raises(TooManyRequests):
        auth.login(database, api_settings, email="ada@example.com", password=PASSWORD, actor=SYSTEM)


def test_parallel_guesses_from_one_address_at_many_accounts_stop_at_its_limit(
    database: Database, tmp_path: Path
) -> None:
    """40 wrong passwords at once from one address, each at a different account (so no account
    limit applies): exactly the address's 4 are checked (401), the other 36 refused (429)."""
    settings = make_settings(tmp_path, login_max_failures_per_ip=4, login_max_failures=50)
    logins = [(f"user{n}@example.com", "203.0.113.9") for n in range(40)]
    assert at_once(database, settings, logins) == {"401": 4, "429": 36}


def test_a_burst_of_good_logins_from_one_address_leaves_nothing_counted(
    database: Database, tmp_path: Path
) -> None:
    """30 right passwords at once from one address whose limit is 3: those past the limit while
    the others are checked are refused (429), the rest log in, and afterwards the address holds
    no count at all: neither the logins nor the refusals were failures."""
    settings = make_settings(tmp_path, login_max_failures_per_ip=3, login_max_failures=50)
    auth.create_user(database, email="ada@example.com", password=PASSWORD, actor=SYSTEM)
    logins = [("ada@example.com", "198.51.100.20")] * 30
    outcomes = at_once(database, settings, logins, password=PASSWORD)
    assert set(outcomes) <= {"ok", "429"}, outcomes  # how many overlap depends on the machine
    assert "ok" in outcomes
    with database.read() as conn:
        counted = conn.execute(
            select(AuthThrottle.failures).where(AuthThrottle.key == "ip:198.51.100.20")
        ).scalar()
    assert counted in (None, 0)


def test_a_number_is_given_back_only_in_the_window_that_took_it(
    database: Database, tmp_path: Path
) -> None:
    """An attempt counted in a window that has since ended gives nothing back to the window
    after it: the newer window's failures stay counted (a slow login cannot erase them)."""
    settings = make_settings(tmp_path, login_window_seconds=60)
    now = utcnow()
    with database.write() as conn:
        old = throttle.reserve(conn, settings, "ip:203.0.113.9", now)
    later = now + timedelta(seconds=120)
    with database.write() as conn:
        newer = throttle.reserve(conn, settings, "ip:203.0.113.9", later)
        throttle.reserve(conn, settings, "ip:203.0.113.9", later)
    assert (old.number, newer.number) == (1, 1)
    for attempt, left in ((old, 2), (newer, 1)):
        with database.write() as conn:
            throttle.give_back(conn, [attempt])
        with database.read() as conn:
            counted = conn.execute(
                select(AuthThrottle.failures).where(AuthThrottle.key == "ip:203.0.113.9")
            ).scalar()
        assert counted == left


def test_a_right_password_within_the_limit_starts_afresh(
    database: Database, api_settings: Settings
) -> None:
    """Four wrong passwords then the right one: logged in, and the count starts again (four more
    wrong ones do not lock)."""
    auth.create_user(database, email="ada@example.com", password=PASSWORD, actor=SYSTEM)
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(AuthenticationFailed):
                auth.login(
                    database, api_settings, email="ada@example.com", password="nope", actor=SYSTEM
                )
        assert auth.login(
            database, api_settings, email="ada@example.com", password=PASSWORD, actor=SYSTEM
        ).access_token


def test_garbage_tokens_do_not_write_an_event_each(
    database: Database, api_settings: Settings
) -> None:
    """200 requests with garbage bearer tokens from one address write two security events: the
    first, and (once the window closes) one summary counting the rest."""
    audit.flush_failed_tokens()  # windows other tests opened are not this test's
    with database.write() as conn:
        conn.execute(SecurityEvent.__table__.delete())
    with TestClient(create_app(api_settings, db=database)) as client:
        for n in range(200):
            answer = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer junk{n}"})
            assert answer.status_code == 401
        with database.read() as conn:
            during = conn.execute(select(func.count()).select_from(SecurityEvent)).scalar_one()
    assert during == 1  # written: the first; counted: the rest
    with database.read() as conn:
        events = conn.execute(select(SecurityEvent.kind, SecurityEvent.detail)).all()
    summary = [d for k, d in events if k == "token_invalid" and "199 more" in d]
    assert len(events) == 2
    assert summary  # written when the app shut down


def test_refresh_refuses_a_deactivated_user(database: Database, api_settings: Settings) -> None:
    """Once a user is deactivated, their refresh token gets no new access token, and their
    session ends."""
    auth.create_user(database, email="ada@example.com", password=PASSWORD, actor=SYSTEM)
    pair = auth.login(
        database, api_settings, email="ada@example.com", password=PASSWORD, actor=SYSTEM
    )
    with database.write() as conn:
        conn.execute(update(User).values(is_active=False))
    with pytest.raises(AuthenticationFailed):
        auth.refresh(database, api_settings, pair.refresh_token, actor=SYSTEM)
    with database.write() as conn:
        conn.execute(update(User).values(is_active=True))
    with pytest.raises(AuthenticationFailed):  # the session ended; reactivating does not revive it
        auth.refresh(database, api_settings, pair.refresh_token, actor=SYSTEM)


def test_the_setup_link_creates_one_admin_once(database: Database, api_settings: Settings) -> None:
    """A fresh installation's setup token creates the first admin, once; a wrong, reused,
    replaced or expired token is refused; once there are users, no token is made."""
    made = setup.new_token(database)
    assert made is not None
    first, _ = made
    replaced = setup.new_token(database)
    assert replaced is not None
    token, expires = replaced
    assert expires > utcnow() + timedelta(minutes=59)
    actor = Actor("anonymous", ip="192.0.2.1")
    with pytest.raises(PermissionDenied, match="not valid"):
        setup.first_admin(
            database,
            token=first,
            email="a@example.com",
            password=PASSWORD,
            display_name="",
            actor=actor,
        )
    with pytest.raises(PermissionDenied):
        setup.first_admin(
            database,
            token="guess",
            email="a@example.com",
            password=PASSWORD,
            display_name="",
            actor=actor,
        )
    admin = setup.first_admin(
        database,
        token=token,
        email="a@example.com",
        password=PASSWORD,
        display_name="",
        actor=actor,
    )
    assert admin.role == "admin"
    with pytest.raises(Conflict, match="set up already"):
        setup.first_admin(
            database,
            token=token,
            email="b@example.com",
            password=PASSWORD,
            display_name="",
            actor=actor,
        )
    assert setup.new_token(database) is None
    actions = [e["action"] for e in audit.list_audit(database)]
    assert "user.setup" in actions


def test_an_expired_setup_token_is_refused(database: Database) -> None:
    """A token past its hour is refused even though it is the current one."""
    made = setup.new_token(database)
    assert made is not None
    token, _ = made
    with database.write() as conn:
        stored = instance_state.get(conn, setup.STATE_NAME)
        assert stored is not None
        past = (utcnow() - timedelta(minutes=1)).isoformat()
        instance_state.put(
            conn,
            setup.STATE_NAME,
            stored.replace(stored.split('"expires_at": "')[1].split('"')[0], past),
            now=utcnow(),
        )
    with pytest.raises(PermissionDenied):
        setup.first_admin(
            database,
            token=token,
            email="a@example.com",
            password=PASSWORD,
            display_name="",
            actor=SYSTEM,
        )


def test_the_setup_page_works_without_javascript(
    database: Database, api_settings: Settings
) -> None:
    """GET /setup shows a plain form (no script, no caching, no referrer); posting it from
    the page creates the admin (a post that does not say where it came from is refused);
    posting it again says the link no longer works."""
    made = setup.new_token(database)
    assert made is not None
    token, _ = made
    with TestClient(create_app(api_settings, db=database)) as client:
        page = client.get(f"/setup?token={token}")
        assert page.status_code == 200
        assert "<script" not in page.text
        assert f'value="{token}"' in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        form = {
            "token": token,
            "email": "root@example.com",
            "password": PASSWORD,
            "password_again": PASSWORD,
        }
        blind = client.post("/setup", data=form)  # neither Origin nor Sec-Fetch-Site
        assert blind.status_code == 403
        client.headers["Sec-Fetch-Site"] = "same-origin"
        mismatch = client.post("/setup", data={**form, "password_again": "other password"})
        assert (mismatch.status_code, "differ" in mismatch.text) == (400, True)
        done = client.post("/setup", data=form)
        assert done.status_code == 201
        assert "root@example.com" in done.text
        again = client.post("/setup", data={**form, "email": "other@example.com"})
        assert again.status_code == 409
        login = client.post(
            "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200


def test_project_names_never_look_like_ids(database: Database) -> None:
    """A name shaped like an id is refused; a reference is looked up as an id or as a name, so it
    never means two projects."""
    owner = auth.create_user(database, email="o@example.com", password=PASSWORD, actor=SYSTEM)
    principal = OPERATOR
    made = projects.create(database, principal, name="alpha", owner_id=owner.id, actor=SYSTEM)
    with pytest.raises(ValidationFailed, match="looks like an id"):
        projects.create(database, principal, name=made.id, owner_id=owner.id, actor=SYSTEM)
    assert projects.visible(database, principal, made.id).name == "alpha"
    assert projects.visible(database, principal, "alpha").id == made.id


def test_an_address_counts_failures_not_logins(database: Database, tmp_path: Path) -> None:
    """Many good logins from one address (an office) never lock it; its failures do, and once it
    is locked, attempts from it are refused without counting against any account."""
    settings = make_settings(tmp_path, login_max_failures_per_ip=3, login_max_failures=50)
    auth.create_user(database, email="ada@example.com", password=PASSWORD, actor=SYSTEM)
    office = Actor("anonymous", ip="198.51.100.7")
    for _ in range(10):
        auth.login(database, settings, email="ada@example.com", password=PASSWORD, actor=office)
    for n in range(3):
        with pytest.raises(AuthenticationFailed):
            auth.login(
                database, settings, email=f"guess{n}@example.com", password="x", actor=office
            )
    with pytest.raises(TooManyRequests):
        auth.login(database, settings, email="ada@example.com", password=PASSWORD, actor=office)
    with pytest.raises(TooManyRequests):
        auth.login(database, settings, email="new@example.com", password="x", actor=office)
    with database.read() as conn:
        keys = set(conn.execute(select(AuthThrottle.key)).scalars())
    assert "account:new@example.com" not in keys  # refused before anything was counted


def test_two_requests_with_one_setup_token_make_one_admin(database: Database) -> None:
    """Sent twice at once, the same setup token creates one admin; the other request is told
    the link was used."""
    made = setup.new_token(database)
    assert made is not None
    token, _ = made
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def use(n: int) -> None:
        start.wait()
        try:
            setup.first_admin(
                database,
                token=token,
                email=f"admin{n}@example.com",
                password=PASSWORD,
                display_name="",
                actor=SYSTEM,
            )
            outcomes.append("created")
        except (PermissionDenied, Conflict):
            outcomes.append("refused")

    threads = [threading.Thread(target=use, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["created", "refused"]
    with database.read() as conn:
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 1
