"""awe deployed as in production, on the loopback: PostgreSQL, pgbouncer in transaction pooling
mode (the shipped pgbouncer.ini), two ``awe serve`` behind Caddy (the shipped Caddyfile), three
``awe worker`` and a scheduler whose queries go through pgbouncer while LISTEN goes straight to
PostgreSQL, and Prometheus scraping them all with the shipped rules."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PostgresServer
from tests.deploy.stack import Process, Stack, query
from tests.e2e.test_api_http import WORKFLOW as COUNTING
from tests.e2e.test_api_http import sse
from tests.support.pgbouncer import pgbouncer
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres
RUNS = int(os.environ.get("SCALE_OUT_RUNS", "1000"))
KILL_AT = RUNS * 2 // 5
#: How long after a SIGKILL requests through the proxy may still fail (Caddy's health probe
#: runs every 2 s; what was in flight on the killed process fails at once).
KILL_WINDOW = 10.0
PASSWORD_LINE = -1
#: Lines the SSE probe's run logs, one each 50 ms: it runs across the kill.
PROBE_LINES = 200
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCALE = "name: scale\nsteps:\n  - {id: a, kind: noop}\n  - {id: b, kind: noop, needs: [a]}\n"


@pytest.fixture
def stack(pg_server: PostgresServer, pg_template: str, tmp_path: Path) -> Iterator[Stack]:
    """A fresh database behind the shipped pgbouncer; the processes are started by the test."""
    name = f"awe_scale_{os.getpid()}"
    direct = pg_server.create_database(name, template=pg_template)
    try:
        with pgbouncer(direct, shipped=True) as pooled:
            built = Stack(tmp_path, pooled, direct)
            try:
                yield built
            finally:
                built.close()
    finally:
        pg_server.drop_database(name)


class Client:
    """HTTP through the proxy, one connection pool per thread, every answer logged; 5xx and
    broken connections are retried (the same body, so the same idempotency key)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.headers: dict[str, str] = {}
        self.answers: list[tuple[float, str, str, int | str]] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []

    def _http(self) -> httpx.Client:
        if not hasattr(self._local, "http"):
            self._local.http = httpx.Client(base_url=self.base, timeout=30)
            with self._lock:
                self._clients.append(self._local.http)
        return self._local.http  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close every thread's connections."""
        for http in self._clients:
            http.close()

    def _note(self, method: str, path: str, status: int | str) -> None:
        with self._lock:
            self.answers.append((time.monotonic(), method, path, status))

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried while the answer is 5xx or the connection breaks."""
        for _ in range(40):
            try:
                answer = self._http().request(method, path, headers=self.headers, **kwargs)
            except httpx.TransportError as exc:
                self._note(method, path, type(exc).__name__)
                time.sleep(0.25)
                continue
            self._note(method, path, answer.status_code)
            if answer.status_code < 500:
                return answer
            time.sleep(0.25)
        raise AssertionError(f"{method} {path} kept failing: {self.answers[-3:]}")

    def failures(self) -> list[tuple[float, str, str, int | str]]:
        """Every 5xx or broken connection seen."""
        return [a for a in self.answers if not isinstance(a[3], int) or a[3] >= 500]


def follow(client: Client, run_id: str) -> list[dict[str, Any]]:
    """A run's events over SSE through the proxy until its end, reconnecting with
    Last-Event-ID whenever the stream is cut (its API process killed, say)."""
    seen: list[dict[str, Any]] = []
    for _ in range(20):
        headers = {**client.headers}
        if seen:
            headers["Last-Event-ID"] = seen[-1]["id"]
        try:
            with httpx.stream(
                "GET", f"{client.base}/api/v1/runs/{run_id}/events/stream",
                headers=headers, timeout=60,
            ) as response:  # fmt: skip
                if response.status_code >= 500:
                    time.sleep(0.25)
                    continue
                assert response.headers["content-type"].startswith("text/event-stream")
                for event in sse(response):
                    if event.get("event") == "end":
                        seen.append(event)
                        return seen
                    seen.append(event)
        except httpx.TransportError:
            time.sleep(0.25)
    raise AssertionError(f"the stream of {run_id} never reached its end: {seen[-3:]}")


def screenshot_graph(prometheus: str, path: Path) -> None:
    """Prometheus's graph page (Debian ships its classic UI: Rickshaw) with each worker's step
    rate (docs/deploy.md shows it)."""
    from playwright.sync_api import sync_playwright

    expr = 'sum by (instance) (rate(awe_step_attempts_total{outcome="succeeded"}[10s]))'
    url = f"{prometheus}/graph?" + urlencode(
        {"g0.expr": expr, "g0.tab": "0", "g0.range_input": "1m", "g0.stacked": "0"}
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector(".rickshaw_graph svg", timeout=30_000)
            page.wait_for_timeout(1000)
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path), full_page=True)
        finally:
            browser.close()


def deadlocks(url: str) -> int:
    """How many deadlocks PostgreSQL has broken in this database so far."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
            return int(
                conn.execute(
                    text(
                        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def statuses(url: str) -> dict[str, int]:
    """Runs by status, read straight from PostgreSQL."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM runs GROUP BY status"))
            return {status: int(n) for status, n in rows}
    finally:
        engine.dispose()


def test_a_thousand_runs_through_the_proxy_survive_a_killed_api_and_worker(
    stack: Stack, pg_server: PostgresServer
) -> None:
    """Log in through Caddy, push workflows, submit 1,000 runs with idempotency keys from eight
    clients; SIGKILL one API process and one worker when 40 % are in. Every run is created
    exactly once and succeeds; requests fail only in the moments after the kill, and their
    retries succeed; an SSE stream started before the kill reaches its run's end with every
    event once; the UI answers through the proxy; Prometheus scraped the new metrics from every
    process and evaluates the rules (the killed API's alert fires); no process logged a
    prepared-statement error and PostgreSQL broke no deadlock. Then, with every worker stopped
    and steps waiting, the no-live-worker alert fires."""
    pg_log = Path(getattr(getattr(pg_server, "handle", None), "log", "") or "/nonexistent")
    pg_log_start = pg_log.stat().st_size if pg_log.exists() else None
    migrated = stack.awe("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    created = stack.awe("admin", "create", "root@example.com", "--generate")
    assert created.returncode == 0, created.stderr
    password = created.stdout.strip().splitlines()[PASSWORD_LINE]
    apis = [stack.api("api-1"), stack.api("api-2")]
    workers = [stack.worker(f"worker-{n}") for n in (1, 2, 3)]
    scheduler = stack.scheduler()
    _, base = stack.caddy(apis)
    prometheus = stack.prometheus(
        {"awe-api": apis, "awe-worker": workers, "awe-scheduler": [scheduler]}, for_seconds=3
    )
    deployed = Deployed(
        stack, base, prometheus, apis, workers, pg_log, pg_log_start, deadlocks(stack.direct_url)
    )
    client = Client(base)
    try:
        scenario(deployed, client, password)
    finally:
        client.close()


@dataclass
class Deployed:
    """The started stack and where to reach it."""

    stack: Stack
    base: str
    prometheus: str
    apis: list[Process]
    workers: list[Process]
    pg_log: Path
    pg_log_start: int | None
    deadlocks_before: int


def scenario(deployed: Deployed, client: Client, password: str) -> None:
    """The test's story, on the started stack."""
    stack, base, prometheus = deployed.stack, deployed.base, deployed.prometheus
    apis, workers = deployed.apis, deployed.workers
    pg_log, pg_log_start = deployed.pg_log, deployed.pg_log_start
    login = client.call("POST", "/api/v1/auth/login",
                        json={"email": "root@example.com", "password": password})  # fmt: skip
    assert login.status_code == 200, login.text
    client.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert client.call("POST", "/api/v1/projects", json={"name": "scale"}).status_code == 201
    for source in (SCALE, COUNTING):
        pushed = client.call("POST", "/api/v1/projects/scale/workflows", json={"source": source})
        assert pushed.status_code == 201, pushed.text
    probe = client.call(
        "POST", "/api/v1/projects/scale/runs",
        json={"workflow": "count", "inputs": {"n": PROBE_LINES}, "idempotency_key": "sse-probe"},
    ).json()["run_id"]  # fmt: skip
    streamed: list[dict[str, Any]] = []
    streamer = threading.Thread(target=lambda: streamed.extend(follow(client, probe)))
    streamer.start()

    submitted: list[str] = []
    killed_at: list[float] = []
    counting = threading.Lock()

    def submit(n: int) -> str:
        answer = client.call(
            "POST", "/api/v1/projects/scale/runs",
            json={"workflow": "scale", "inputs": {}, "idempotency_key": f"run-{n}"},
        )  # fmt: skip
        assert answer.status_code in (200, 201), answer.text
        run_id: str = answer.json()["run_id"]
        with counting:
            submitted.append(run_id)
            kill = len(submitted) >= KILL_AT and not killed_at
            if kill:
                killed_at.append(time.monotonic())
        if kill:
            apis[0].kill()
            workers[0].kill()
        return run_id

    with ThreadPoolExecutor(8) as pool:
        run_ids = list(pool.map(submit, range(RUNS)))
    assert killed_at, "the kill never happened"
    assert len(set(run_ids)) == RUNS
    wait_until(
        lambda: statuses(stack.direct_url).get("succeeded", 0) == RUNS + 1,
        timeout=300,
        what=f"{RUNS} runs and the probe to succeed",
    )
    assert statuses(stack.direct_url) == {"succeeded": RUNS + 1}  # none doubled, none lost
    streamer.join(timeout=120)
    assert streamed
    assert streamed[-1]["data"]["status"] == "succeeded"
    stored = client.call("GET", f"/api/v1/runs/{probe}/events").json()
    # Every event once, in order, across reconnections.
    assert [int(e["id"]) for e in streamed[:-1]] == [e["seq"] for e in stored]
    # Its last attempt logged every line (an earlier one may have died with the killed worker:
    # at-least-once, and the stream shows both).
    logged = [e["data"]["message"] for e in streamed if e["event"] == "log"]
    assert logged[-PROBE_LINES:] == [f"line {i}" for i in range(1, PROBE_LINES + 1)]

    late = [
        a for a in client.failures() if not killed_at[0] - 1 <= a[0] <= killed_at[0] + KILL_WINDOW
    ]
    assert late == []
    with httpx.Client(base_url=base, timeout=10) as browser:  # the web UI, through the proxy
        assert "<form" in browser.get("/login").text
        entered = browser.post(
            "/login",
            data={"email": "root@example.com", "password": password, "next": "/runs"},
            headers={"Origin": base},
        )
        assert entered.status_code == 303, entered.text
        runs_page = browser.get("/runs")
        assert runs_page.status_code == 200
        assert "scale" in runs_page.text
    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 404  # scraped directly only

    time.sleep(3)  # a few more scrapes and rule evaluations
    jobs = {
        r["metric"]["job"]: int(float(r["value"][1]))
        for r in query(prometheus, "count by (job) (max_over_time(awe_build_info[10m]))")
    }
    assert jobs == {"awe-api": 2, "awe-worker": 3, "awe-scheduler": 1}
    working = query(
        prometheus,
        'max by (instance) (max_over_time(awe_step_attempts_total{outcome="succeeded"}[10m]))',
    )
    assert {r["metric"]["instance"] for r in working} == {f"127.0.0.1:{w.port}" for w in workers}
    assert query(prometheus, "max(awe_database_up)")[0]["value"][1] == "1"
    assert query(prometheus, "queue:awe_step_attempts:rate5m")
    assert query(prometheus, "sum(max_over_time(awe_runs_finished_total[10m]))")
    down = query(prometheus, 'ALERTS{alertname="AweApiDown", alertstate="firing"}')
    assert [r["metric"]["instance"] for r in down] == [f"127.0.0.1:{apis[0].port}"]

    if os.environ.get("SCREENSHOTS_TO_DOCS"):
        screenshot_graph(prometheus, DOCS / "screenshots" / "prometheus.png")

    for process in stack.processes:
        if process.name.startswith(("api", "worker", "scheduler")):
            assert "prepared statement" not in process.text(), process.name
            assert "Traceback" not in process.text(), process.name
    assert deadlocks(stack.direct_url) == deployed.deadlocks_before
    if pg_log_start is not None:
        with pg_log.open(errors="replace") as log:
            log.seek(pg_log_start)
            assert "deadlock detected" not in log.read()

    for worker in workers[1:]:
        worker.stop()
    for n in range(3):
        client.call(
            "POST", "/api/v1/projects/scale/runs",
            json={"workflow": "scale", "inputs": {}, "idempotency_key": f"waiting-{n}"},
        )  # fmt: skip
    wait_until(
        lambda: query(prometheus, 'ALERTS{alertname="AweNoLiveWorker", alertstate="firing"}'),
        timeout=90,
        what="the no-live-worker alert to fire",
    )
