"""A production-shaped awe on the loopback: PostgreSQL, pgbouncer (the shipped configuration,
transaction pooling), API processes behind Caddy (the shipped Caddyfile), workers, a scheduler,
and Prometheus (the shipped rules), each a real process with a log file of its own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import AWE, awe_env
from tests.support.servers import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@dataclass
class Process:
    """One process of the stack: its role, port, log and handle."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def text(self) -> str:
        """What it logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_http(url: str, process: Process | None = None, *, timeout: float = 60) -> None:
    """Until ``url`` answers 200 (failing early, with its log, if ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and not process.alive():
            raise AssertionError(f"{process.name} exited: {process.text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200 in {timeout} s")
        time.sleep(0.2)


@dataclass
class Stack:
    """The processes, started on demand; everything stops in :meth:`close`."""

    root: Path
    pooled_url: str
    direct_url: str
    processes: list[Process] = field(default_factory=list)
    secrets: dict[str, str] = field(
        default_factory=lambda: {
            # What every machine of one installation must share (docs/deploy.md).
            "AWE_JWT_SECRET": "j" * 48,
            "AWE_SECRET_KEY": "k" * 48,
        }
    )

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """An awe process's environment: queries through pgbouncer, LISTEN straight to
        PostgreSQL, the shared secrets, JSON logs."""
        home.mkdir(parents=True, exist_ok=True)
        settings = {
            "AWE_DATABASE_URL": self.pooled_url,
            "AWE_DATABASE_LISTEN_URL": self.direct_url,
            "AWE_LOG_FORMAT": "json",
            **self.secrets,
            **extra,
        }
        return awe_env(home, **settings)

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str], port: int | None = None
    ) -> Process:
        """Start one process; its output goes to ``<root>/<name>.log``."""
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        process = Process(name, proc, log, port)
        self.processes.append(process)
        return process

    def awe(self, *args: str, home: str = "setup") -> subprocess.CompletedProcess[str]:
        """Run one awe command (against the direct URL: migrations take advisory locks)."""
        env = self.env(self.root / home, AWE_DATABASE_URL=self.direct_url)
        return subprocess.run(
            [AWE, *args], cwd=self.root, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    def api(self, name: str) -> Process:
        """``awe serve`` on a port of its own, with a home of its own (another machine)."""
        port = free_port()
        process = self.start(
            name,
            [AWE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=self.env(self.root / name),
            port=port,
        )
        wait_http(f"http://127.0.0.1:{port}/livez", process)
        return process

    def worker(self, name: str) -> Process:
        """``awe worker`` with its own metrics port."""
        port = free_port()
        process = self.start(
            name,
            [AWE, "worker", "--no-scheduler", "--concurrency", "4", "--lease-seconds", "3",
             "--shutdown-grace", "5", "--metrics-port", str(port)],
            env=self.env(self.root / name),
            port=port,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{port}/metrics", process)
        return process

    def scheduler(self, name: str = "scheduler") -> Process:
        """``awe scheduler`` with its own metrics port."""
        port = free_port()
        process = self.start(
            name,
            [AWE, "scheduler", "--metrics-port", str(port)],
            env=self.env(self.root / name),
            port=port,
        )
        wait_http(f"http://127.0.0.1:{port}/metrics", process)
        return process

    def caddy(self, upstreams: list[Process]) -> tuple[Process, str]:
        """Debian's Caddy on the shipped Caddyfile, plain HTTP on a port of its own."""
        port = free_port()
        binary = shutil.which("caddy")
        assert binary, "caddy is missing: .ci/run installs Debian's caddy package"
        env = {
            **os.environ,
            "AWE_SITE": f"http://127.0.0.1:{port}",
            "AWE_UPSTREAMS": " ".join(f"127.0.0.1:{p.port}" for p in upstreams),
            "HOME": str(self.root / "caddy-home"),
            "XDG_DATA_HOME": str(self.root / "caddy-home"),
            "XDG_CONFIG_HOME": str(self.root / "caddy-home"),
        }
        process = self.start(
            "caddy",
            [binary, "run", "--config", str(DEPLOY / "caddy" / "Caddyfile"),
             "--adapter", "caddyfile"],
            env=env,
            port=port,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/livez", process)
        return process, base

    def prometheus(self, targets: dict[str, list[Process]], *, for_seconds: int) -> str:
        """Debian's Prometheus scraping every process each second, with the shipped alert and
        recording rules; the alerts' ``for:`` shortened to ``for_seconds`` (their timing is
        unit-tested by promtool; here they must fire within the test)."""
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: .ci/run installs Debian's prometheus package"
        folder = self.root / "prometheus"
        folder.mkdir()
        alerts = (DEPLOY / "prometheus" / "awe-alerts.yml").read_text()
        (folder / "awe-alerts.yml").write_text(
            re.sub(r"(?m)^(\s+)for: \S+$", rf"\g<1>for: {for_seconds}s", alerts)
        )
        shutil.copy(DEPLOY / "prometheus" / "awe-rules.yml", folder / "awe-rules.yml")
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ["
            + ", ".join(f'"127.0.0.1:{p.port}"' for p in processes)
            + "]\n"
            for job, processes in targets.items()
        )
        (folder / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 1s\n"
            "rule_files:\n  - awe-rules.yml\n  - awe-alerts.yml\nscrape_configs:\n" + jobs
        )
        port = free_port()
        process = self.start(
            "prometheus",
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            env=dict(os.environ),
            port=port,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/-/ready", process)
        return base

    def close(self) -> None:
        """Stop whatever still runs."""
        for process in reversed(self.processes):
            process.stop(timeout=10)


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
