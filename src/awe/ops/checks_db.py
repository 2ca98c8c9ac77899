"""Doctor checks of the database: it answers, quickly, at the migrations' head; SQLite in WAL
mode and sound; PostgreSQL recent enough, with pgvector."""

from __future__ import annotations

import statistics
import time

from sqlalchemy import text

from awe.ops.doctor import Context, Probe
from awe.ops.report import Outcome, SkipCheck, failed, passed, skipped, warned
from awe.storage import migrate

#: PostgreSQL older than this is refused.
MIN_POSTGRES = 140000


def reachable(ctx: Context) -> Outcome:
    """The database answers ``SELECT 1``."""
    try:
        db = ctx.db
    except SkipCheck:
        return failed(
            str(ctx.database_problem), "check AWE_DATABASE_URL, and that the database is running"
        )
    return passed(db.describe())


def latency(ctx: Context) -> Outcome:
    """The median of five round trips."""
    db = ctx.db
    times = []
    with db.read() as conn:
        for _ in range(5):
            started = time.perf_counter()
            conn.execute(text("SELECT 1"))
            times.append((time.perf_counter() - started) * 1000)
    median = round(statistics.median(times), 2)
    if median > 200:
        return failed(f"{median} ms a round trip", "move awe nearer its database", ms=median)
    if median > 20:
        return warned(f"{median} ms a round trip (slow)", "move awe nearer its database", ms=median)
    return passed(f"{median} ms a round trip", ms=median)


def migrations(ctx: Context) -> Outcome:
    """The database is at the shipped migrations' head."""
    found = migrate.status(ctx.db)
    known = {r.revision for r in migrate.history()}
    data = {"current": list(found.current), "heads": list(found.heads)}
    if found.up_to_date:
        return passed(f"at head ({', '.join(found.heads)})", **data)
    if any(r not in known for r in found.current):
        return failed(
            f"the database is at {', '.join(found.current)}, newer than this awe knows",
            "upgrade awe on this machine to the version that set the database up",
            **data,
        )
    behind = ", ".join(found.current) or "empty"
    return failed(
        f"the database is at {behind}, head is {', '.join(found.heads)}", "awe db upgrade", **data
    )


def sqlite_wal(ctx: Context) -> Outcome:
    """SQLite journals in WAL mode (readers do not block the writer)."""
    db = ctx.db
    if not db.is_sqlite:
        return skipped("PostgreSQL: no SQLite journal")
    with db.read() as conn:
        mode = str(conn.execute(text("PRAGMA journal_mode")).scalar())
    if mode.lower() != "wal":
        return warned(
            f"journal mode is {mode}",
            "awe up sets WAL; or: sqlite3 awe.db 'PRAGMA journal_mode=WAL'",
        )
    return passed("WAL")


def sqlite_integrity(ctx: Context) -> Outcome:
    """SQLite's ``quick_check`` finds nothing wrong."""
    db = ctx.db
    if not db.is_sqlite:
        return skipped("PostgreSQL: no SQLite file")
    with db.read() as conn:
        found = [str(r[0]) for r in conn.execute(text("PRAGMA quick_check")).all()]
    if found != ["ok"]:
        return failed(
            f"quick_check: {'; '.join(found[:5])}",
            "awe backup restore LATEST (the file is damaged)",
            problems=found[:50],
        )
    return passed("quick_check: ok")


def postgres_version(ctx: Context) -> Outcome:
    """PostgreSQL is 14 or newer."""
    db = ctx.db
    if db.is_sqlite:
        return skipped("SQLite")
    with db.read() as conn:
        number = int(conn.execute(text("SHOW server_version_num")).scalar_one())
        shown = str(conn.execute(text("SHOW server_version")).scalar_one())
    if number < MIN_POSTGRES:
        return failed(
            f"PostgreSQL {shown}: awe needs 14 or newer", "upgrade PostgreSQL", version=shown
        )
    return passed(f"PostgreSQL {shown}", version=shown)


def pgvector(ctx: Context) -> Outcome:
    """pgvector is installed in the database (the knowledge base's vectors)."""
    db = ctx.db
    if db.is_sqlite:
        return skipped("SQLite: vectors are in sqlite-vec or numpy")
    with db.read() as conn:
        installed = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
        available = conn.execute(
            text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
    if installed:
        return passed(f"pgvector {installed}")
    if available:
        return failed("pgvector is available but not installed", "awe db upgrade")
    return failed(
        "pgvector is not available on this server", "install pgvector (postgresql-NN-pgvector)"
    )


PROBES = [
    Probe("db.reachable", "database", "the database answers", reachable),
    Probe("db.latency", "database", "round trips are quick", latency),
    Probe("db.migrations", "database", "at the migrations' head", migrations),
    Probe("db.sqlite_wal", "database", "SQLite in WAL mode", sqlite_wal),
    Probe("db.sqlite_integrity", "database", "SQLite quick_check", sqlite_integrity),
    Probe("db.postgres_version", "database", "PostgreSQL 14+", postgres_version),
    Probe("db.pgvector", "database", "pgvector installed", pgvector),
]
