"""Helpers for acceptance tests: the real ``awe`` executable and a real server on loopback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

AWE = str(Path(sys.executable).parent / "awe")


def awe_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for the CLI: the test's AWE_HOME, nothing of the developer's awe settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWE_")
        and key not in ("DATABASE_URL", "LOG_LEVEL", "ENVIRONMENT", "DRY_RUN")
    }
    env.update({"AWE_HOME": str(home), "COLUMNS": "200", **extra})
    return env


def run_awe(
    *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``awe ARGS`` in ``home`` and capture its output."""
    return subprocess.run(
        [AWE, *args],
        cwd=home,
        env=env or awe_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def setup_link(home: Path) -> str:
    """The one-time setup link a fresh `awe up` printed to its log (see running_server)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(r"(http://\S+/setup\?token=\S+)", (home / "server.log").read_text())
        if found:
            return found.group(1)
        time.sleep(0.1)
    pytest.fail("no setup link in the server log")


def first_admin(base: str, home: Path, email: str, password: str) -> dict[str, str]:
    """Create the first admin with the setup link's token over the API; its Authorization."""
    token = setup_link(home).rsplit("token=", 1)[1]
    created = httpx.post(
        f"{base}/api/v1/auth/setup", json={"token": token, "email": email, "password": password}
    )
    assert created.status_code == 201, created.text
    return login(base, email, password)


def login(base: str, email: str, password: str) -> dict[str, str]:
    """Log in; the Authorization header."""
    answer = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@contextmanager
def running_server(
    *args: str, home: Path, env: dict[str, str], client: httpx.Client | None = None
) -> Iterator[str]:
    """Start ``awe ARGS --port P`` and yield its base URL once /api/v1/health answers (asked
    with ``client``, when given: then over HTTPS)."""
    port = free_port()
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [AWE, *args, "--port", str(port)], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"{'https' if client else 'http'}://127.0.0.1:{port}"
    ask = client or httpx.Client()
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited {proc.returncode}: {(home / 'server.log').read_text()}")
            try:
                ask.get(f"{base}/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("server did not answer within 60 s")
                time.sleep(0.1)
        yield base
    finally:
        if client is None:
            ask.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
