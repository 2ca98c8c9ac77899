"""Chaos helpers: worker processes (the real ``awe worker``) that tests kill with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import AWE, awe_env


class WorkerProcesses:
    """Starts ``awe worker`` processes on one database and kills them on request."""

    def __init__(self, home: Path, db_url: str) -> None:
        self.home = home
        self.env = awe_env(home, DATABASE_URL=db_url, PYTHONPATH=str(Path.cwd()))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self, *extra: str, lease: float = 1.5, concurrency: int = 4
    ) -> subprocess.Popen[bytes]:
        """Start one worker; its output goes to a log file under the test's home."""
        log = self.home / f"worker-{len(self.procs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    AWE,
                    "worker",
                    "--lease-seconds",
                    str(lease),
                    "--concurrency",
                    str(concurrency),
                    "--shutdown-grace",
                    "2",
                    *extra,
                ],
                cwd=Path.cwd(),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        """The workers still running."""
        return [p for p in self.procs if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL one worker: no cleanup, no lease released."""
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def log_text(self) -> str:
        """Every worker's output so far."""
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def stop_all(self) -> None:
        """SIGTERM every live worker and wait for it."""
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path: Path, db_url: str) -> Iterator[WorkerProcesses]:
    """Worker processes on the test's database, all stopped at the end."""
    group = WorkerProcesses(tmp_path, db_url)
    yield group
    group.stop_all()
