"""``awe db stats`` and ``awe db vacuum`` on SQLite and PostgreSQL: the figures name the
largest tables with their rows (and on PostgreSQL sizes, dead rows and unused indexes),
what cannot be measured says why, and a vacuum after deleting many rows gives the space back."""

from __future__ import annotations

from sqlalchemy import delete, insert

from awe.core.clock import utcnow
from awe.engine.client import Engine
from awe.services import database_care
from awe.storage.database import Database
from awe.storage.engine_models import RunEvent


def test_stats_and_vacuum_give_back_the_space_of_deleted_rows(database: Database) -> None:
    """5,000 events of 1 KB each, counted as the largest table, then deleted: the vacuum
    (FULL on PostgreSQL) leaves the database smaller than before it ran."""
    run_id = Engine(database).submit({"name": "big", "steps": [{"id": "a", "kind": "noop"}]})
    own = len(Engine(database).events(run_id))  # the run's own state events
    now = utcnow()
    rows = [
        {"run_id": run_id, "seq": 10 + n, "type": "log", "level": "info",
         "message": f"{n:05d}" + "x" * 1000, "created_at": now}
        for n in range(5000)
    ]  # fmt: skip
    with database.write() as conn:
        conn.execute(insert(RunEvent), rows)
    found = database_care.stats(database)
    top = found["tables"][0]
    assert top["name"] == "run_events"
    if database.is_sqlite:
        assert top["rows"] == 5000 + own
        assert "dbstat" in found["unavailable"]["table_sizes"]
    else:
        assert top["size_bytes"] > 5_000_000
        assert "pg_stat_statements" in found["unavailable"]["slow_statements"]
        assert isinstance(found["indexes"]["never_scanned"], list)
    with database.write() as conn:
        conn.execute(delete(RunEvent).where(RunEvent.run_id == run_id))
    done = database_care.vacuum(database, analyze=True, full=True)
    assert done["ran"][:2] == (
        ["VACUUM", "ANALYZE"] if database.is_sqlite else ["VACUUM FULL", "ANALYZE"]
    )
    assert done["size_after_bytes"] < done["size_before_bytes"] - 3_000_000
    assert database_care.stats(database)["size_bytes"] == done["size_after_bytes"]
