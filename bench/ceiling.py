# ruff: noqa: S608 - the table name is a constant; ids are integers it returned
"""The database's ceiling for a durable queue on this machine: the least a queue must do.

    python bench/ceiling.py URL ROWS          # one loop process (bench/engine.py starts two)

A table of ready rows; each loop claims a batch (one transaction: mark them running, return
their ids), then marks them done (a second transaction), until none is left: the two commits
per batch any at-least-once queue pays, and nothing else (no steps, no events, no runs). It
runs through awe's own database layer (same driver, pragmas and pool), so the ratio of awe's
drain to this loop is the share of the hardware's limit awe reaches.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from awe.core.config import load_settings
from awe.storage.database import Database, create_database

BATCH = 16  # as a worker with --concurrency 16 claims
TABLE = "bench_ceiling"


def prepare(db: Database, rows: int) -> None:
    """A fresh table of ``rows`` ready rows with a partial index on the ready ones."""
    key = "BIGSERIAL" if db.dialect == "postgresql" else "INTEGER"
    with db.write() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        conn.exec_driver_sql(
            f"CREATE TABLE {TABLE} (id {key} PRIMARY KEY, status TEXT NOT NULL,"
            " payload TEXT, claimed_by TEXT)"
        )
        conn.exec_driver_sql(f"CREATE INDEX {TABLE}_ready ON {TABLE} (id) WHERE status = 'ready'")
        conn.execute(
            text(f"INSERT INTO {TABLE} (status, payload) VALUES ('ready', :p)"),
            [{"p": "{}"} for _ in range(rows)],
        )


def loop(db: Database, owner: str) -> int:
    """Claim and finish batches until none is ready; the number of rows done."""
    lock = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""
    claim = text(
        f"UPDATE {TABLE} SET status = 'running', claimed_by = :owner WHERE id IN ("
        f"SELECT id FROM {TABLE} WHERE status = 'ready' ORDER BY id LIMIT {BATCH}{lock})"
        " RETURNING id"
    )
    done = 0
    while True:
        with db.write() as conn:
            ids = [row[0] for row in conn.execute(claim, {"owner": owner})]
        if not ids:
            return done
        marks = ", ".join(str(int(i)) for i in ids)
        with db.write() as conn:
            conn.exec_driver_sql(f"UPDATE {TABLE} SET status = 'done' WHERE id IN ({marks})")
        done += len(ids)


def measure(db: Database, rows: int, processes: int = 2) -> dict[str, float]:
    """Fill the table, run ``processes`` loops to the end; rows per second."""
    prepare(db, rows)
    url = db.url.render_as_string(hide_password=False)
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__)), url, str(rows), f"loop-{i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    spans = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError("a ceiling loop failed")
        spans.append([float(v) for v in out.split()])
    # From the first loop's first claim to the last loop's end (process start-up not counted).
    seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    with db.read() as conn:
        left = conn.exec_driver_sql(f"SELECT count(*) FROM {TABLE} WHERE status <> 'done'")
        if left.scalar_one():
            raise RuntimeError("the ceiling loops left rows undone")
    return {"runs": rows, "runs_per_s": rows / seconds, "seconds": seconds}


def main() -> None:
    """One loop process on the database at argv[1]."""
    url, owner = sys.argv[1], sys.argv[3]
    settings = load_settings(_env_file=None, log_level="WARNING", db_pool_size=2)
    db = create_database(settings, url=url)
    try:
        with db.read() as conn:  # connect before the clock starts
            conn.exec_driver_sql("SELECT 1")
        started = time.time()
        loop(db, owner)
        print(started, time.time())
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
