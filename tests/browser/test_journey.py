"""A new user's first hour, in Chromium against a real `awe up`, on SQLite and PostgreSQL: the
first admin from the setup link, a workflow pushed and started from its form, the DAG turning
green and log lines arriving live, a long run cancelled, a failing one requeued from the
dead-letter page, a fork that reuses outputs, a document uploaded and searched, logging out."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, Site, new_page, shoot
from tests.e2e.conftest import setup_link

PIPELINE = """name: pipeline
description: Fetch, wait, two branches, a report
inputs:
  who: {type: string, required: true}
  pause: {type: number, default: 0}
steps:
  - id: fetch
    kind: shell
    with:
      command: "for i in 1 2 3; do echo line $i for {{ inputs.who }}; sleep 0.4; done"
  - id: wait
    kind: sleep
    needs: [fetch]
    with: {seconds: "{{ inputs.pause }}"}
  - id: left
    kind: noop
    needs: [wait]
  - id: right
    kind: shell
    needs: [wait]
    with: {command: "echo right side"}
  - id: report
    kind: noop
    needs: [left, right]
"""

FLAKY = """name: flaky
inputs:
  flag: {type: string, required: true}
steps:
  - id: check
    kind: shell
    retry: {max_attempts: 1}
    with: {command: "test -f {{ inputs.flag }}"}
"""


def push(page: Page, source: str) -> None:
    """Paste a workflow on the workflows page and push it."""
    page.goto("/workflows?project=demo")
    page.get_by_label("YAML").fill(source)
    page.get_by_role("button", name="Push as the next version").click()
    expect(page.get_by_role("heading", level=2, name="Run it")).to_be_visible()


def start(page: Page, workflow: str, **inputs: str) -> str:
    """Start a run from the workflow's form; the run's id."""
    page.goto(f"/workflows/{workflow}?project=demo")
    for name, value in inputs.items():
        page.locator(f'[name="in.{name}"]').fill(value)
    page.get_by_role("button", name="Start a run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def node(page: Page, key: str) -> object:
    """The DAG node of a step."""
    return page.locator(f'svg a[aria-label^="Step {key}:"] g.node')


def test_a_new_user_goes_from_setup_to_a_repaired_run(browser: Browser, site: Site) -> None:
    """The whole first session of a new operator, as they would click it."""
    context, page = new_page(browser, site)
    # The one-time setup link creates the first admin; then log in.
    page.goto(setup_link(site.home))
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password (10 characters at least)").fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create the admin").click()
    expect(page.get_by_text("was created")).to_be_visible()
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    shoot(page, site, "home")

    # A project, a workflow pushed from the page, a run started from its form.
    page.goto("/workflows")
    page.get_by_label("Name", exact=True).fill("demo")
    page.get_by_role("button", name="Create project").click()
    push(page, PIPELINE)
    shoot(page, site, "workflow")
    run_id = start(page, "pipeline", who="ada")
    page.evaluate("window.__same_page = true")  # gone if the page reloads
    # Live: the log lines arrive and every node turns green, with no reload.
    expect(page.locator("#events")).to_contain_text("line 3 for ada")
    for key in ("fetch", "wait", "left", "right", "report"):
        expect(node(page, key)).to_have_class(re.compile(r"\bs-succeeded\b"))
    expect(page.locator("#run-header .badge").first).to_contain_text("succeeded")
    assert page.evaluate("window.__same_page") is True
    shoot(page, site, "run")

    # A long run, cancelled from its page.
    start(page, "pipeline", who="bob", pause="120")
    expect(node(page, "wait")).to_have_class(re.compile(r"\bs-running\b"))
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-header .badge").first).to_contain_text("cancelled")

    # A failing run lands in the dead letters; fixed, it is requeued from that page.
    flag = site.home / "flag"
    push(page, FLAKY)
    failing = start(page, "flaky", flag=str(flag))
    expect(node(page, "check")).to_have_class(re.compile(r"\bs-dead\b"))
    page.get_by_role("link", name="Dead letters").click()
    row = page.locator("tr", has=page.locator(f'a[href="/runs/{failing}"]'))
    expect(row).to_contain_text("check")
    shoot(page, site, "dead-letters")
    flag.write_text("fixed")
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Requeue selected").click()
    expect(page.get_by_text("1 step(s) requeued.")).to_be_visible()
    page.goto(f"/runs/{failing}")
    expect(node(page, "check")).to_have_class(re.compile(r"\bs-succeeded\b"))

    # A fork of the first run from its middle: what it reuses, what runs again.
    page.goto(f"/runs/{run_id}")
    page.get_by_label("Fork from").select_option("right")
    page.get_by_role("button", name="Fork…").click()
    expect(page.get_by_role("heading", name="Reused (3)")).to_be_visible()
    expect(page.get_by_role("heading", name="Run again (2)")).to_be_visible()
    page.get_by_role("button", name="Fork from right").click()
    expect(page.get_by_text("This run is a fork")).to_be_visible()
    for key in ("right", "report"):
        expect(node(page, key)).to_have_class(re.compile(r"\bs-succeeded\b"))
    steps = page.locator("#run-steps")
    for key in ("fetch", "wait", "left"):
        expect(steps.locator("tr", has_text=key).first).to_contain_text("reused")
    expect(steps.locator("tr", has_text="report")).not_to_contain_text("reused")

    # A document uploaded, ingested and found.
    document = site.home / "engine.md"
    document.write_text("# awe\n\nawe runs durable AI workflows with a real dead-letter queue.\n")
    page.goto("/knowledge?project=demo")
    page.get_by_label("Files (text, Markdown, HTML, PDF…)").set_input_files(str(document))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("1 document stored")).to_be_visible()
    page.get_by_role("link", name="the ingest run").click()
    expect(node(page, "ingest")).to_have_class(re.compile(r"\bs-succeeded\b"), timeout=120_000)
    page.goto("/knowledge?project=demo")
    page.get_by_label("Question").fill("dead-letter queue")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("ol.results")).to_contain_text("engine.md")
    shoot(page, site, "knowledge")

    # Log out: the session's cookie no longer opens a page.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    page.goto("/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=/runs$"))
    context.close()
