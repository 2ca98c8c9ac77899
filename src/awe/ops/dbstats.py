"""What the database holds and how well it is kept (``awe db stats``), and keeping it
(``awe db vacuum``): sizes, the largest tables and indexes, dead rows and index use on
PostgreSQL, free pages on SQLite, and the slowest statements when ``pg_stat_statements`` is
there. Anything that cannot be measured on this backend says why instead of a number."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, text

from awe.ops import backup
from awe.storage.database import Database

TOP = 10


def _sqlite(db: Database) -> dict[str, Any]:
    with db.read() as conn:
        page = int(conn.execute(text("PRAGMA page_size")).scalar_one())
        pages = int(conn.execute(text("PRAGMA page_count")).scalar_one())
        free = int(conn.execute(text("PRAGMA freelist_count")).scalar_one())
        names = sorted(inspect(conn).get_table_names())
        rows = backup.table_counts(conn, names)
        indexes = sum(len(inspect(conn).get_indexes(n)) for n in names)
    tables = [{"name": n, "rows": r} for n, r in sorted(rows.items(), key=lambda i: -i[1])]
    return {
        "backend": "sqlite",
        "size_bytes": page * pages,
        "free_pages": free,
        "free_bytes": page * free,
        "tables": tables[:TOP],
        "indexes": {"count": indexes},
        "unavailable": {
            "table_sizes": "this SQLite has no dbstat table (sizes per table are not known)",
            "dead_rows": "SQLite has none: deleted pages are free pages (awe db vacuum)",
            "index_use": "SQLite keeps no index statistics",
            "slow_statements": "SQLite keeps no statement statistics",
        },
    }


def _postgres(db: Database) -> dict[str, Any]:
    with db.read() as conn:
        size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        tables = [
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in r._mapping.items()}
            for r in conn.execute(
                text(
                    "SELECT relname AS name, n_live_tup AS rows, n_dead_tup AS dead_rows,"
                    " pg_total_relation_size(relid) AS size_bytes,"
                    " last_autovacuum, last_autoanalyze"
                    " FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC"
                    " LIMIT :top"
                ),
                {"top": TOP},
            )
        ]
        indexes = [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT indexrelname AS name, relname AS table, idx_scan AS scans,"
                    " pg_relation_size(indexrelid) AS size_bytes FROM pg_stat_user_indexes"
                    " ORDER BY pg_relation_size(indexrelid) DESC LIMIT :top"
                ),
                {"top": TOP},
            )
        ]
        unused = [
            str(r.name)
            for r in conn.execute(
                text(
                    "SELECT s.indexrelname AS name FROM pg_stat_user_indexes s"
                    " JOIN pg_index i ON i.indexrelid = s.indexrelid"
                    " WHERE s.idx_scan = 0 AND NOT i.indisunique ORDER BY 1"
                )
            )
        ]
        has_statements = conn.execute(
            text("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        ).first()
    result: dict[str, Any] = {
        "backend": "postgresql",
        "size_bytes": size,
        "tables": tables,
        "indexes": {"largest": indexes, "never_scanned": unused},
        "unavailable": {},
    }
    if has_statements is None:
        result["unavailable"]["slow_statements"] = (
            "pg_stat_statements is not installed (add it to shared_preload_libraries and"
            " CREATE EXTENSION pg_stat_statements)"
        )
        return result
    try:
        with db.read() as conn:
            result["slow_statements"] = [
                dict(r._mapping)
                for r in conn.execute(
                    text(
                        "SELECT left(query, 200) AS query, calls, round(mean_exec_time::numeric,"
                        " 2) AS mean_ms, round(total_exec_time::numeric, 2) AS total_ms"
                        " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                        " ORDER BY mean_exec_time DESC LIMIT :top"
                    ),
                    {"top": TOP},
                )
            ]
    except Exception as exc:  # noqa: BLE001 - not loaded in shared_preload_libraries, say
        result["unavailable"]["slow_statements"] = str(exc).splitlines()[0]
    return result


def stats(db: Database) -> dict[str, Any]:
    """The database's figures."""
    return _sqlite(db) if db.is_sqlite else _postgres(db)


def vacuum(db: Database, *, analyze: bool = False, full: bool = False) -> dict[str, Any]:
    """VACUUM (FULL with ``full`` on PostgreSQL; SQLite's always rewrites the file), ANALYZE
    with ``analyze``; on SQLite also ``PRAGMA optimize`` and a WAL checkpoint. Sizes before
    and after, and what ran."""
    before = stats(db)["size_bytes"]
    started = time.perf_counter()
    ran: list[str] = []
    statements = ["VACUUM FULL" if full and not db.is_sqlite else "VACUUM"]
    if analyze:
        statements.append("ANALYZE")
    if db.is_sqlite:
        statements += ["PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"]
        # Outside any transaction: the pool's connections open one on first use.
        raw = db.engine.raw_connection()
        try:
            for statement in statements:
                raw.driver_connection.execute(statement)  # type: ignore[union-attr]
                ran.append(statement)
        finally:
            raw.close()
    else:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
                ran.append(statement)
    after = stats(db)["size_bytes"]
    return {
        "ran": ran,
        "size_before_bytes": before,
        "size_after_bytes": after,
        "seconds": round(time.perf_counter() - started, 2),
    }


def size_bytes(db: Database) -> int:
    """The database's size on disk, cheaply (for the metrics)."""
    with db.read() as conn:
        if db.is_sqlite:
            page = int(conn.execute(text("PRAGMA page_size")).scalar_one())
            return page * int(conn.execute(text("PRAGMA page_count")).scalar_one())
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
