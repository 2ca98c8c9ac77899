"""The browser tier: a real `awe up` on a free port, driven by Debian's Chromium through
Playwright (never `playwright install`: no browser download works here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.conftest import awe_env, running_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
#: Screenshots of every page, kept as test artifacts.
ARTIFACTS = ROOT / "artifacts" / "screenshots"
#: The screenshots `make screenshots` copies into docs/screenshots (the README shows "run").
IN_DOCS = frozenset({"home", "run", "dead-letters", "workflow", "knowledge"})
ADMIN_TOKEN = "browser-tier-admin-token-0123456789abcdef"
PASSWORD = "a long enough password"
# Runs take their time on a shared two-core machine: assertions wait up to 30 s.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium, headless (the tier fails, not skips, without it)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install Debian's chromium (the browser tier needs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@dataclass
class Site:
    """A running awe and how to reach it."""

    base: str
    home: Path
    backend: str

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An API call with the admin token."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=headers, **kwargs)

    def user(self, email: str, role: str = "member") -> dict[str, str]:
        """Create a user; the Authorization header of their login."""
        made = self.api("POST", "/users", json={"email": email, "password": PASSWORD, "role": role})
        assert made.status_code == 201, made.text
        answer = httpx.post(
            f"{self.base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def start_site(request: pytest.FixtureRequest, home: Path, backend: str) -> Iterator[Site]:
    """`awe up` on ``backend`` (SQLite, or PostgreSQL: a fresh database of the tier's server)."""
    extra = {"AWE_ADMIN_TOKEN": ADMIN_TOKEN, "AWE_INGEST_ROOT": str(home)}
    if backend == "postgres":
        extra["DATABASE_URL"] = request.getfixturevalue("db_url")
    with running_server("up", home=home, env=awe_env(home, **extra)) as base:
        yield Site(base, home, backend)


@pytest.fixture
def site(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[Site]:
    """A fresh awe (no users yet) for this test, on each backend."""
    yield from start_site(request, tmp_path, backend)


def new_page(browser: Browser, site: Site, **options: Any) -> tuple[BrowserContext, Page]:
    """A browser context of its own (its own cookies) and a page in it."""
    context = browser.new_context(base_url=site.base, **options)
    context.set_default_timeout(20_000)
    return context, context.new_page()


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Log in through the form."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shoot(page: Page, site: Site, name: str) -> Path:
    """A full-page screenshot of the page, kept as an artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{site.backend}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SCREENSHOTS_TO_DOCS") and site.backend == "sqlite" and name in IN_DOCS:
        (ROOT / "docs" / "screenshots").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ROOT / "docs" / "screenshots" / f"{name}.png")
    return path
