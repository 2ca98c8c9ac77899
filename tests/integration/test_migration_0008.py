"""Upgrading a database with history to 0008 keeps every row and fills the new columns: events
numbered per run in their old order, each run's last number, tries from attempts, and trust
taken away from what lives in members' projects. On SQLite the table rebuilds run with
foreign-key actions off, so no run's events or steps are deleted along the way."""

from __future__ import annotations

from sqlalchemy import text

from awe.storage import migrate
from awe.storage.database import Database
from tests.support.migrations import upgrade_with_rows

ROWS = """
INSERT INTO users (id, email, display_name, role, is_active, created_at, updated_at)
  VALUES ('u-admin', 'a@example.com', '', 'admin', true, '2026-01-01', '2026-01-01'),
         ('u-member', 'm@example.com', '', 'member', true, '2026-01-01', '2026-01-01');
INSERT INTO projects (id, name, description, owner_id, created_at, updated_at)
  VALUES ('p-admin', 'ops', '', 'u-admin', '2026-01-01', '2026-01-01'),
         ('p-member', 'mine', '', 'u-member', '2026-01-01', '2026-01-01');
INSERT INTO workflows (id, project_key, name, version, spec, source, created_at)
  VALUES ('w1', 'p-admin', 'ops-flow', 1, '{}', 'x', '2026-01-01'),
         ('w2', 'p-member', 'my-flow', 1, '{}', 'x', '2026-01-01'),
         ('w3', '', 'cli-flow', 1, '{}', 'x', '2026-01-01');
INSERT INTO runs (id, project_id, workflow_name, spec, inputs, status, queue, priority, created_at)
  VALUES ('r1', 'p-admin', 'ops-flow', '{}', '{}', 'succeeded', 'default', 0, '2026-01-01'),
         ('r2', 'p-member', 'my-flow', '{}', '{}', 'running', 'default', 0, '2026-01-01');
INSERT INTO steps (id, run_id, step_key, kind, needs, definition, status, queue, priority,
                   attempt, max_attempts, on_failure, cancel_requested, errors, created_at)
  VALUES ('s1', 'r1', 'a', 'noop', '[]', '{}', 'succeeded', 'default', 0, 3, 5, 'fail', false,
          '[]', '2026-01-01');
INSERT INTO run_events (run_id, type, level, message, created_at)
  VALUES ('r2', 'state', 'info', 'one', '2026-01-01'),
         ('r1', 'state', 'info', 'two', '2026-01-01'),
         ('r2', 'state', 'info', 'three', '2026-01-01'),
         ('r1', 'log', 'info', 'four', '2026-01-01'),
         ('r2', 'log', 'info', 'five', '2026-01-01');
"""


def test_upgrading_to_0008_keeps_history_and_fills_the_new_columns(database: Database) -> None:
    """From 0007 with two projects, runs, a step and events, to head: nothing lost, and the
    backfills are right."""
    upgrade_with_rows(database, "0007", ROWS)
    with database.read() as conn:
        events = conn.execute(text("SELECT run_id, seq, message FROM run_events ORDER BY id")).all()
        runs = dict(conn.execute(text("SELECT id, event_seq FROM runs")).all())
        trusted = {
            table: dict(conn.execute(text(f"SELECT id, trusted FROM {table}")).all())  # noqa: S608
            for table in ("runs", "workflows")
        }
        tries = conn.execute(text("SELECT attempt, tries FROM steps")).one()
    assert [(r, s, m) for r, s, m in events] == [
        ("r2", 1, "one"),
        ("r1", 1, "two"),
        ("r2", 2, "three"),
        ("r1", 2, "four"),
        ("r2", 3, "five"),
    ]
    assert runs == {"r1": 2, "r2": 3}
    assert {k: bool(v) for k, v in trusted["runs"].items()} == {"r1": True, "r2": False}
    assert {k: bool(v) for k, v in trusted["workflows"].items()} == {
        "w1": True,
        "w2": False,
        "w3": True,
    }
    assert tuple(tries) == (3, 3)
    assert migrate.status(database).up_to_date
