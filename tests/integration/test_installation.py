"""The setup sequence and the resets on SQLite and PostgreSQL: setup is idempotent and makes
the first admin once; a soft reset puts long-expired leases back and keeps every row; a full
reset leaves a backup and no table (PostgreSQL) or no file (SQLite)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, update

from awe.core.config import Settings
from awe.core.errors import Conflict
from awe.engine.client import Engine
from awe.services import installation, setup
from awe.services.audit import SYSTEM
from awe.storage.database import Database
from awe.storage.engine_models import Step
from tests.support.workers import live_worker


def counts(database: Database) -> dict[str, int]:
    """Rows of every table."""
    from awe.ops import backup

    with database.read() as conn:
        return backup.table_counts(conn, inspect(conn).get_table_names())


def test_setup_twice_then_soft_and_full_reset(database: Database, settings: Settings) -> None:
    """First setup creates the admin and records the key; the second changes nothing; a
    soft reset reaps a lease expired long ago, removes an old unfinished backup file but not
    one being written, and keeps every row; a full reset is refused while a worker is live,
    then backs up and removes the data."""
    steps, report = installation.run_setup(
        settings, lambda: database, actor=SYSTEM, admin_email="root@example.com"
    )
    made = {s.id: s for s in steps}
    assert made["admin"].changed
    assert made["admin"].shown_once
    assert "shown_once" not in made["admin"].as_dict()
    assert report.summary["fail"] == 0
    again, _ = installation.run_setup(
        settings, lambda: database, actor=SYSTEM, admin_email="other@example.com"
    )
    assert [s.id for s in again if s.changed] == []
    assert setup.has_users(database)
    engine = Engine(database)
    run_id = engine.submit({"name": "one", "steps": [{"id": "a", "kind": "noop"}]})
    with database.write() as conn:
        conn.execute(
            update(Step).where(Step.run_id == run_id).values(
                status="running", lease_owner="gone", lease_token="t",
                lease_expires_at=datetime.now(UTC) - timedelta(minutes=5))
        )  # fmt: skip
    folder = settings.effective_backup_dir
    folder.mkdir(parents=True, exist_ok=True)
    stale, young = folder / ".awe-backup-old.partial", folder / ".awe-backup-new"
    stale.write_text("x")
    os.utime(stale, (0, 0))
    young.mkdir()
    (young / "awe.dump").write_text("being written")
    os.utime(young, (0, 0))  # the folder is old, what is inside is being written now
    rows = counts(database)
    soft = {s.id: s for s in installation.soft_reset(settings, database)}
    assert soft["leases"].message == "released 1 expired lease(s)"
    assert soft["partial_files"].message == "removed 1 unfinished backup file(s)"
    assert not stale.exists()
    assert (young / "awe.dump").exists()
    assert {t: n for t, n in counts(database).items() if t != "run_events"} == {
        t: n
        for t, n in rows.items()
        if t != "run_events"  # the reap adds events
    }
    assert engine.get_run(run_id).step("a").status != "running"
    with live_worker(database, ["default"]), pytest.raises(Conflict, match="worker"):
        installation.full_reset(settings, database, take_backup=True)
    full = {s.id: s for s in installation.full_reset(settings, database, take_backup=True)}
    assert full["backup"].changed
    assert not (settings.home / "secrets").exists()
    if database.is_sqlite:
        from pathlib import Path

        assert not Path(str(database.engine.url.database)).exists()
    else:
        with database.read() as conn:
            assert inspect(conn).get_table_names() == []
