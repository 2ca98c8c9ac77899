"""Every page in Chromium: a member sees only their own projects, the pages work without
JavaScript, they pass axe-core with no serious or critical violation, keyboard alone is enough,
and no page breaks its Content-Security-Policy."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Locator, expect

from tests.browser.conftest import PASSWORD, Site, log_in, new_page, shoot

WORKFLOW = """name: work
inputs:
  seconds: {type: number, default: 0}
steps:
  - id: first
    kind: sleep
    with: {seconds: "{{ inputs.seconds }}"}
  - id: second
    kind: noop
    needs: [first]
"""
BROKEN = """name: broken
inputs:
  zero: {type: integer, default: 0}
steps:
  - id: boom
    kind: noop
    with: {ratio: "{{ 1 // inputs.zero }}"}
"""


def member_with_runs(site: Site, email: str, project: str) -> tuple[dict[str, str], list[str]]:
    """A member with a project holding both workflows and a run of each (one dead step)."""
    auth = site.user(email)
    assert site.api("POST", "/projects", json={"name": project}, headers=auth).status_code == 201
    for source in (WORKFLOW, BROKEN):
        pushed = site.api(
            "POST", f"/projects/{project}/workflows", json={"source": source}, headers=auth
        )
        assert pushed.status_code == 201, pushed.text
    runs = []
    for workflow in ("work", "broken"):
        started = site.api(
            "POST", f"/projects/{project}/runs", json={"workflow": workflow}, headers=auth
        )
        assert started.status_code == 201, started.text
        runs.append(started.json()["run_id"])
    return auth, runs


def wait_status(site: Site, auth: dict[str, str], run_id: str, status: str) -> None:
    """Wait for a run to reach ``status``."""
    deadline = time.monotonic() + 60
    while site.api("GET", f"/runs/{run_id}", headers=auth).json()["status"] != status:
        assert time.monotonic() < deadline, f"run {run_id} never became {status}"
        time.sleep(0.2)


def test_a_member_sees_none_of_another_members_work(browser: Browser, site: Site) -> None:
    """Member B's pages list none of member A's runs, dead steps or workflows; A's run, step
    and download URLs answer "not found"; B's own run shows."""
    auth_a, (run_a, _) = member_with_runs(site, "a@example.com", "alpha")
    member_with_runs(site, "b@example.com", "beta")
    wait_status(site, auth_a, run_a, "succeeded")
    context, page = new_page(browser, site)
    log_in(page, "b@example.com")
    page.goto("/runs")
    expect(page.locator("#rows tr")).to_have_count(2)
    expect(page.locator(f'#rows a[href="/runs/{run_a}"]')).to_have_count(0)
    expect(page.locator("#rows")).not_to_contain_text("alpha")
    page.goto("/dead-letters")
    expect(page.locator("body")).not_to_contain_text("alpha")
    for path in (
        f"/runs/{run_a}",
        f"/runs/{run_a}/steps/first",
        f"/runs/{run_a}/inputs.json",
        f"/runs/{run_a}/fork?from_step=first",
        "/workflows/work?project=alpha",
        "/knowledge?project=alpha",
    ):
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == 404, path
    answer = page.goto("/admin")
    assert answer is not None
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("this page is for admins")
    context.close()


def test_log_in_start_cancel_and_requeue_work_without_javascript(
    browser: Browser, site: Site
) -> None:
    """With JavaScript off, the plain forms do it all: log in, start a run from the form,
    cancel it, requeue a dead step (after the cause is gone it would succeed; here it dies
    again, and the page says it was requeued)."""
    auth, (_, broken) = member_with_runs(site, "nojs@example.com", "plain")
    wait_status(site, auth, broken, "failed")
    context, page = new_page(browser, site, java_script_enabled=False)
    log_in(page, "nojs@example.com")
    page.goto("/workflows/work?project=plain")
    page.locator('[name="in.seconds"]').fill("120")
    page.get_by_role("button", name="Start a run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-header .badge").first).to_contain_text("cancelled")
    page.goto("/dead-letters")
    page.locator("tr", has_text="boom").get_by_role("checkbox").check()
    page.get_by_role("button", name="Requeue selected").click()
    expect(page.get_by_text("1 step(s) requeued.")).to_be_visible()
    context.close()


def _pages(site: Site) -> list[str]:
    auth, (run_id, _) = member_with_runs(site, "axe@example.com", "axe")
    wait_status(site, auth, run_id, "succeeded")
    return [
        "/",
        "/runs",
        f"/runs/{run_id}",
        f"/runs/{run_id}/steps/first",
        f"/runs/{run_id}/fork?from_step=second",
        "/dead-letters",
        "/queues",
        "/schedules",
        "/workflows?project=axe",
        "/workflows/work?project=axe",
        "/knowledge?project=axe",
        "/admin",
        "/account",
    ]


def test_every_page_passes_axe_and_its_content_security_policy(
    browser: Browser, site: Site
) -> None:
    """axe-core finds no serious or critical violation on any page, in light and dark themes;
    no page logs a Content-Security-Policy violation; each page is kept as a screenshot."""
    pages = _pages(site)
    site.user("root@example.com", role="admin")
    context, page = new_page(browser, site)
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security" in message.text else None
        ),
    )
    log_in(page, "root@example.com")
    axe = Axe()
    found: dict[str, Any] = {}
    for theme in ("light", "dark"):
        context.add_cookies([{"name": "awe_theme", "value": theme, "url": site.base}])
        for path in pages:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            result = axe.run(page)
            bad = [
                f"{v['id']}: {node['target']}"
                for v in result.response["violations"]
                if v["impact"] in ("serious", "critical")
                for node in v["nodes"][:3]
            ]
            if bad:
                found[f"{theme} {path}"] = bad
            if theme == "light":
                name = path.strip("/").split("?")[0].replace("/", "-") or "home"
                uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                shoot(page, site, "page-" + re.sub(uuid, "run", name))
    assert found == {}
    assert violations == []
    context.close()


def test_log_in_and_act_by_keyboard_alone(browser: Browser, site: Site) -> None:
    """Tab to the fields and Enter: logged in; Tab through the menu to Runs and Enter opens
    it; every control reached shows where the focus is."""
    site.user("keys@example.com")
    context, page = new_page(browser, site)
    page.goto("/login")
    assert page.evaluate("document.activeElement.name") == "email"  # autofocus
    page.keyboard.type("keys@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    for _ in range(30):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.textContent.trim()")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"no visible focus on {focused!r}"
        if focused == "Runs":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    context.close()


SCHEDULED = """name: nightly
schedule: "0 3 * * *"
steps:
  - id: tidy
    kind: noop
"""


def test_schedules_admin_and_account_actions_work_in_the_browser(
    browser: Browser, site: Site
) -> None:
    """An admin pauses, resumes and fires a schedule (landing on the run it started), sees a
    validation error under its line and the diff of two versions, creates a member, makes them
    admin and deactivates them, and creates and revokes a personal token."""
    site.user("boss@example.com", role="admin")
    context, page = new_page(browser, site)
    log_in(page, "boss@example.com")
    page.goto("/workflows")
    page.get_by_label("Name", exact=True).fill("ops")
    page.get_by_role("button", name="Create project").click()
    page.get_by_label("YAML").fill("name: nightly\nsteps:\n  - id: tidy\n    kind: nope\n")
    page.get_by_role("button", name="Validate").click()
    expect(page.locator(".located")).to_contain_text("unknown kind 'nope'")
    for source in (SCHEDULED, SCHEDULED.replace("tidy", "sweep")):
        page.goto("/workflows?project=ops")
        page.get_by_label("YAML").fill(source)
        page.get_by_role("button", name="Push as the next version").click()
        expect(page.get_by_role("heading", level=2, name="Run it")).to_be_visible()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("pre.diff .add", has_text="id: sweep")).to_have_count(1)
    expect(page.locator("pre.diff .del", has_text="id: tidy")).to_have_count(1)
    page.goto("/schedules")
    row = page.locator("tr", has_text="ops/nightly")
    expect(row).to_contain_text("At 03:00 AM")
    row.get_by_role("button", name="Pause").click()
    expect(page.locator("tr", has_text="ops/nightly")).to_contain_text("paused")
    page.locator("tr", has_text="ops/nightly").get_by_role("button", name="Resume").click()
    expect(page.locator("tr", has_text="ops/nightly")).to_contain_text("enabled")
    page.locator("tr", has_text="ops/nightly").get_by_role("button", name="Fire now").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    expect(page.locator("#run-header")).to_contain_text("nightly")

    page.goto("/admin")
    page.get_by_label("Email").fill("new@example.com")
    page.get_by_label("Password (10 at least)").fill(PASSWORD)
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_text("User new@example.com created.")).to_be_visible()
    users = page.locator("table").first  # the users; the audit log below names them too

    def user_row() -> Locator:
        return users.locator("tr", has_text="new@example.com")

    user_row().get_by_role("button", name="Make admin").click()
    expect(user_row().locator("td").nth(2)).to_have_text("admin")
    expect(user_row().get_by_role("button", name="Make member")).to_be_visible()
    user_row().get_by_role("button", name="Deactivate").click()
    expect(user_row()).to_contain_text("deactivated")
    shoot(page, site, "admin-actions")

    page.goto("/account")
    page.get_by_label("Name").fill("ci")
    page.get_by_role("button", name="New token").click()
    token = page.locator("code", has_text="awe_pat_").inner_text()
    answer = httpx.get(f"{site.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    page.get_by_role("button", name="Revoke token ci").click()
    expect(
        page.locator("tbody tr").filter(has=page.get_by_role("cell", name="ci", exact=True))
    ).to_contain_text("revoked")
    answer = httpx.get(f"{site.base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    context.close()
