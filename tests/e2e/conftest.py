"""Helpers for acceptance tests: the real ``awe`` executable and a real server on loopback."""

from __future__ import annotations

import os
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


@contextmanager
def running_server(*args: str, home: Path, env: dict[str, str]) -> Iterator[str]:
    """Start ``awe ARGS --port P`` and yield its base URL once /api/v1/health answers."""
    port = free_port()
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [AWE, *args, "--port", str(port)], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited {proc.returncode}: {(home / 'server.log').read_text()}")
            try:
                httpx.get(f"{base}/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("server did not answer within 60 s")
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
