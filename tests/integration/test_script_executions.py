"""Operational commands' record: rows of script_executions read back newest first, and the
three script metrics on /metrics showing each command's last run (duration, 1 or 0 for its
outcome, its time), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from awe.api.app import create_app
from awe.core.config import Settings
from awe.services import operations
from awe.storage.database import Database

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def metric(text: str, name: str, command: str) -> float:
    """The value of ``name{command="..."}`` in a Prometheus exposition."""
    found = re.search(rf'^{name}{{command="{command}"}} (\S+)$', text, re.MULTILINE)
    assert found is not None, f"{name} for {command} is not exposed"
    return float(found.group(1))


def test_history_and_metrics_show_each_commands_last_run(
    database: Database, settings: Settings
) -> None:
    """A backup that succeeded then one that failed, a doctor dry run: history lists them
    newest first (or one command's); the metrics give the failed backup's duration and 0,
    the dry run's 1 (exit 10 is a success), each with its finish time."""
    runs = [
        ("backup create", 0, T0, 30),
        ("backup create", 1, T0 + timedelta(hours=1), 12.5),
        ("doctor", 10, T0 + timedelta(hours=2), 2),
    ]
    for command, code, started, seconds in runs:
        assert operations.record(
            database, command=command, arguments=command.split(), actor="operator:test@host",
            started_at=started, finished_at=started + timedelta(seconds=seconds),
            exit_code=code, error="disk full" if code == 1 else None,
        )  # fmt: skip
    listed = operations.history(database)
    assert [(e.command, e.exit_code) for e in listed] == [
        ("doctor", 10), ("backup create", 1), ("backup create", 0),
    ]  # fmt: skip
    assert [e.exit_code for e in operations.history(database, command="backup create")] == [1, 0]
    with TestClient(create_app(settings, db=database)) as client:
        text = client.get("/metrics").text
    assert metric(text, "script_execution_duration_seconds", "backup create") == 12.5
    assert metric(text, "script_execution_status", "backup create") == 0
    assert metric(text, "script_execution_status", "doctor") == 1
    finished = T0 + timedelta(hours=1, seconds=12.5)
    assert metric(text, "script_last_run_timestamp", "backup create") == finished.timestamp()


def test_a_report_holding_dates_is_recorded_as_the_cli_prints_it(database: Database) -> None:
    """A report with values JSON has no type for (a PostgreSQL statistics timestamp, a path)
    is recorded with them as text, the way --json prints them, instead of failing the command
    that made it (``db stats`` after a vacuum did)."""
    stamp = datetime(2026, 12, 2, 13, 16, tzinfo=UTC)
    assert operations.record(
        database, command="db stats", arguments=["db", "stats"], actor="operator:test",
        started_at=T0, finished_at=T0 + timedelta(seconds=1), exit_code=0,
        report={"tables": [{"name": "runs", "last_autovacuum": stamp}]},
    )  # fmt: skip
    (latest,) = operations.history(database, command="db stats", limit=1)
    assert latest.report == {"tables": [{"name": "runs", "last_autovacuum": str(stamp)}]}
