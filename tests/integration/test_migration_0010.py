"""Upgrading to 0010 gives every existing step its run's workflow name (what the dead-letter
queue now groups and filters by), and keeps every step, going up and down."""

from __future__ import annotations

from sqlalchemy import text

from awe.storage import migrate
from awe.storage.database import Database
from tests.support.migrations import upgrade_with_rows

ROWS = """
INSERT INTO runs (id, workflow_name, spec, inputs, status, queue, priority, created_at)
  VALUES ('r1', 'ingest-docs', '{}', '{}', 'failed', 'default', 0, '2026-01-01'),
         ('r2', 'nightly', '{}', '{}', 'succeeded', 'default', 0, '2026-01-01');
INSERT INTO steps (id, run_id, step_key, kind, needs, definition, status, queue, priority,
                   attempt, tries, max_attempts, on_failure, cancel_requested, errors, created_at)
  VALUES ('s1', 'r1', 'a', 'noop', '[]', '{}', 'dead', 'default', 0, 1, 1, 5, 'fail', false,
          '[]', '2026-01-01'),
         ('s2', 'r1', 'b', 'noop', '[]', '{}', 'skipped', 'default', 0, 0, 0, 5, 'fail', false,
          '[]', '2026-01-01'),
         ('s3', 'r2', 'a', 'noop', '[]', '{}', 'succeeded', 'default', 0, 1, 1, 5, 'fail', false,
          '[]', '2026-01-01');
"""


def test_upgrading_to_0010_copies_each_runs_workflow_onto_its_steps(database: Database) -> None:
    """From 0009 with two runs of different workflows: each step gets its own run's name."""
    upgrade_with_rows(database, "0009", ROWS)
    with database.read() as conn:
        names = dict(conn.execute(text("SELECT id, workflow_name FROM steps")).all())
    assert names == {"s1": "ingest-docs", "s2": "ingest-docs", "s3": "nightly"}
    assert migrate.status(database).up_to_date
    migrate.downgrade(database, "0009")  # on SQLite a table rebuild: no step may be lost
    with database.read() as conn:
        kept = conn.execute(text("SELECT id FROM steps ORDER BY id")).scalars().all()
    assert kept == ["s1", "s2", "s3"]
    migrate.upgrade(database)
