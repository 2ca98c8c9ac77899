"""A worker process serves its own metrics (``awe worker --metrics-port``): it is up, its
slots, the attempts it ran, its build; ``promtool check metrics`` finds nothing to say; and a
port already taken is refused with a clear message, not a stack trace."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx

from awe.engine.client import Engine
from tests.e2e.conftest import AWE, awe_env, run_awe
from tests.support.servers import free_port
from tests.support.wait import wait_until


def test_a_worker_serves_its_own_metrics(tmp_path: Path, db_url: str, engine: Engine) -> None:
    """While it runs, the worker's /metrics says one worker is up with 3 free slots, counts the
    attempt it ran, and names the version and backend; promtool prints no problem."""
    port = free_port()
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    run_id = engine.submit({"name": "scraped", "steps": [{"id": "a", "kind": "noop"}]})
    proc = subprocess.Popen(
        [AWE, "worker", "--concurrency", "3", "--metrics-port", str(port), "--no-scheduler"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: engine.get_run(run_id).status == "succeeded", what="the run")

        seen: list[str] = []

        def scraped() -> bool:
            try:
                seen[:] = [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text]
            except httpx.TransportError:
                return False
            wanted = 'awe_step_attempts_total{kind="noop",outcome="succeeded",queue="default"} 1.0'
            return wanted in seen[0]

        wait_until(scraped, what="the worker's metrics")
        text = seen[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "awe_worker_up 1.0" in text
    assert 'awe_worker_slots{state="free"} 3.0' in text
    assert 'awe_worker_slots{state="used"} 0.0' in text
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    assert f'awe_build_info{{backend="{backend}"' in text
    assert "awe_queue_depth" not in text  # the database's gauges are the API's
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: .ci/run installs Debian's prometheus package"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_a_metrics_port_in_use_is_refused_clearly(tmp_path: Path, db_url: str) -> None:
    """A --metrics-port something else holds: exit non-zero, naming the port and what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_awe(
            "worker", "--burst", "--metrics-port", str(port),
            home=tmp_path, env=awe_env(tmp_path, DATABASE_URL=db_url),
        )  # fmt: skip
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr
    assert "--metrics-port" in result.stderr
    assert "Traceback" not in result.stderr
