"""The indexes the queue's hot path relies on, as the migrations leave them on each database.

A claim must read ready rows off ``ix_steps_claim`` already in claim order (priority DESC,
run_after, id): when the index lost its DESC (SQLite rebuilt the table from a reflection that
drops it), every claim sorted every queued row and the drain slowed with the backlog.
"""

from __future__ import annotations

from sqlalchemy import text

from awe.storage import queue as queue_sql
from awe.storage.database import Database


def _claim_select() -> str:
    return (
        f"SELECT id FROM steps WHERE {queue_sql._READY}"  # noqa: S608 - the queue's own SQL
        " ORDER BY priority DESC, run_after, id LIMIT 16"
    )


def test_the_claim_reads_its_index_in_order_and_the_hot_tables_are_tuned(
    database: Database,
) -> None:
    """SQLite: the claim's read uses ix_steps_claim and sorts nothing (no temporary b-tree for
    the ORDER BY). PostgreSQL: ix_steps_claim is partial (queued rows only) and in claim order,
    a run's steps are indexed by state, and the hot tables have their own autovacuum
    thresholds."""
    if database.is_sqlite:
        _check_sqlite(database)
    else:
        _check_postgres(database)


def _check_sqlite(database: Database) -> None:
    sql = _claim_select().replace(":queues", "('default')")
    with database.read() as conn:
        plan = [
            row[3]
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql.replace(":now", "'2030-01-01 00:00:00.000000'")
            )
        ]
        index = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'ix_steps_claim'")
        ).scalar_one()
    assert any("ix_steps_claim" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert "priority DESC" in index


def _check_postgres(database: Database) -> None:
    with database.read() as conn:
        indexes: dict[str, str] = dict(
            conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'steps'")
            ).all()
        )
        options: dict[str, str | None] = dict(
            conn.execute(
                text(
                    "SELECT relname, array_to_string(reloptions, ',') FROM pg_class"
                    " WHERE relname IN ('steps', 'runs')"
                )
            ).all()
        )
    claim = indexes["ix_steps_claim"]
    assert "priority DESC" in claim, claim
    assert "WHERE" in claim, claim
    assert "'queued'" in claim, claim
    assert "(run_id, status)" in indexes["ix_steps_run_status"]
    assert "ix_steps_run_id" not in indexes  # served by (run_id, status) and (run_id, step_key)
    for table in ("steps", "runs"):
        assert "autovacuum_vacuum_scale_factor=0.02" in (options[table] or ""), options
