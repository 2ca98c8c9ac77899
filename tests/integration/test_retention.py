"""Retention on both databases: old finished runs go with their steps and events, old audit
entries, security events and script records by their own settings, in batches; what is open,
a finished child of an open run, a finished run with an open child, and what is young stay; a
dry run changes nothing; the leading scheduler runs it by itself at its interval."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from awe.core.config import Settings
from awe.core.ids import new_id
from awe.engine import retention
from awe.engine.scheduler import Scheduler
from awe.storage.auth_models import AuditEntry, SecurityEvent
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step
from awe.storage.ops_models import ScriptExecution
from tests.support.clock import ManualClock

OLD_RUNS = int(os.environ.get("RETENTION_RUNS", "10000"))
NOW = datetime(2026, 6, 1, tzinfo=ManualClock().now().tzinfo)


def plant(
    db: Database, n: int, *, status: str, finished: datetime | None, **extra: Any
) -> list[str]:
    """Insert ``n`` runs of one step and two events each, as an ended (or open) run leaves
    them; returns their ids."""
    ids = [new_id() for _ in range(n)]
    created = (finished or NOW) - timedelta(minutes=5)
    step_status = {"succeeded": "succeeded", "failed": "dead", "cancelled": "cancelled"}.get(
        status, "running"
    )
    with db.write() as conn:
        conn.execute(
            insert(Run),
            [
                {"id": i, "workflow_name": "old", "spec": {"name": "old", "steps": []},
                 "inputs": {}, "status": status, "queue": "default", "priority": 0,
                 "created_at": created, "finished_at": finished, "event_seq": 2, **extra}
                for i in ids
            ],
        )  # fmt: skip
        conn.execute(
            insert(Step),
            [
                {"id": new_id(), "run_id": i, "step_key": "a", "workflow_name": "old",
                 "kind": "noop", "needs": [], "definition": {}, "status": step_status,
                 "queue": "default", "priority": 0, "attempt": 1, "tries": 1,
                 "max_attempts": 1, "on_failure": "fail", "cancel_requested": False,
                 "errors": [], "created_at": created,
                 **({"lease_owner": "w", "lease_token": "t",
                     "lease_expires_at": NOW + timedelta(hours=1)}
                    if step_status == "running" else {})}
                for i in ids
            ],
        )  # fmt: skip
        conn.execute(
            insert(RunEvent),
            [
                {"run_id": i, "seq": seq, "type": "state", "level": "info",
                 "message": f"event {seq}", "created_at": created}
                for i in ids
                for seq in (1, 2)
            ],
        )  # fmt: skip
    return ids


def logs(db: Database, at: datetime, n: int) -> None:
    """``n`` audit entries, security events and script records written at ``at``."""
    with db.write() as conn:
        conn.execute(
            insert(AuditEntry),
            [{"at": at, "actor_type": "system", "action": "x.y"} for _ in range(n)],
        )
        conn.execute(
            insert(SecurityEvent),
            [{"at": at, "kind": "login_failed", "detail": ""} for _ in range(n)],
        )
        conn.execute(insert(ScriptExecution), [
            {"command": "doctor", "arguments": [], "actor": "operator:t", "started_at": at,
             "finished_at": at, "exit_code": 0} for _ in range(n)])  # fmt: skip


def remaining(db: Database) -> dict[str, int]:
    """Rows per table now."""
    with db.read() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(model)).scalar_one())
            for name, model in (("runs", Run), ("steps", Step), ("run_events", RunEvent),
                                ("audit_log", AuditEntry), ("security_events", SecurityEvent),
                                ("script_executions", ScriptExecution))
        }  # fmt: skip


def statuses(db: Database, ids: list[str]) -> set[str]:
    """The statuses of these runs that still exist."""
    with db.read() as conn:
        return set(conn.execute(select(Run.status).where(Run.id.in_(ids))).scalars())


def test_old_finished_runs_and_logs_go_in_batches_and_nothing_open_is_touched(
    database: Database, settings: Settings
) -> None:
    """10,000 runs that ended a year ago go with their steps and events, and audit entries,
    security events and script records past their own ages, in batches of 500; an old open
    run (its step leased), a finished child of an open parent, a finished parent of an open
    child, and runs that ended 10 days ago all stay, as do young log rows. A dry run's counts
    are what the pass then deletes, and the dry run deleted nothing."""
    year_ago = NOW - timedelta(days=365)
    old = plant(database, OLD_RUNS, status="succeeded", finished=year_ago)
    old += plant(database, 5, status="failed", finished=year_ago)
    open_run = plant(database, 1, status="running", finished=None)
    (open_parent,) = plant(database, 1, status="running", finished=None)
    kept_child = plant(database, 1, status="succeeded", finished=year_ago,
                       parent_run_id=open_parent, depth=1)  # fmt: skip
    (busy_parent,) = plant(database, 1, status="succeeded", finished=year_ago)
    open_child = plant(database, 1, status="running", finished=None,
                       parent_run_id=busy_parent, depth=1)  # fmt: skip
    young = plant(database, 3, status="succeeded", finished=NOW - timedelta(days=10))
    logs(database, NOW - timedelta(days=400), 7)  # past every default age
    logs(database, NOW - timedelta(days=200), 4)  # past 180 days, not past the audit log's 365
    logs(database, NOW - timedelta(days=1), 2)
    before = remaining(database)
    cutoffs = retention.Cutoffs.of(settings, NOW)

    planned = retention.count(database, cutoffs)
    assert remaining(database) == before  # a dry run changes nothing
    expected = {"runs": len(old), "steps": len(old), "run_events": 2 * len(old),
                "audit_log": 7, "security_events": 11, "script_executions": 11}  # fmt: skip
    assert planned.rows == expected
    batches: list[tuple[str, int]] = []
    deleted = retention.run(
        database, cutoffs, batch_size=500, progress=lambda t, n: batches.append((t, n))
    )
    assert deleted.rows == expected
    assert deleted.done
    assert max(n for t, n in batches if t == "runs") == 500
    assert sum(n for t, n in batches if t == "runs") == len(old)
    assert statuses(database, old) == set()
    survivors = [*open_run, open_parent, *kept_child, busy_parent, *open_child, *young]
    with database.read() as conn:
        alive = set(conn.execute(select(Run.id)).scalars())
    assert alive == set(survivors)
    after = remaining(database)
    assert after["steps"] == len(survivors)
    assert after["run_events"] == 2 * len(survivors)
    # 2 young of each log, the 200-day-old audit entries (+1: this pass's own audit entry).
    assert (after["audit_log"], after["security_events"], after["script_executions"]) == (
        before["audit_log"] - 7 + 1,
        2,
        2,
    )
    again = retention.run(database, cutoffs, batch_size=500)
    assert again.total == 0


def test_a_finished_run_with_a_step_still_leased_stays(
    database: Database, settings: Settings
) -> None:
    """A cancelled run whose step still runs (it sees the cancel at its next heartbeat) keeps
    its rows, however old, until the step has ended."""
    (cancelled,) = plant(database, 1, status="cancelled", finished=NOW - timedelta(days=400))
    with database.write() as conn:
        conn.execute(
            update(Step).where(Step.run_id == cancelled).values(
                status="running", lease_owner="w", lease_token="t",
                lease_expires_at=NOW + timedelta(minutes=1),
            )
        )  # fmt: skip
    cutoffs = retention.Cutoffs.of(settings, NOW)
    assert retention.count(database, cutoffs).rows["runs"] == 0
    assert retention.run(database, cutoffs, batch_size=10).rows["runs"] == 0
    assert statuses(database, [cancelled]) == {"cancelled"}
    with database.write() as conn:
        conn.execute(update(Step).where(Step.run_id == cancelled).values(status="cancelled"))
    assert retention.run(database, cutoffs, batch_size=10).rows["runs"] == 1


def test_older_than_replaces_every_age_but_keep_forever(
    database: Database, settings: Settings
) -> None:
    """--older-than's age applies to every table, except one set to 0, which is kept."""
    kept = settings.model_copy(update={"retention_audit_days": 0})
    plant(database, 3, status="succeeded", finished=NOW - timedelta(days=3))
    logs(database, NOW - timedelta(days=3), 2)
    cutoffs = retention.Cutoffs.of(kept, NOW, timedelta(days=2))
    assert cutoffs.audit_log is None
    deleted = retention.run(database, cutoffs, batch_size=2)
    assert deleted.rows == {"runs": 3, "steps": 3, "run_events": 6, "audit_log": 0,
                            "security_events": 2, "script_executions": 2}  # fmt: skip


def test_the_leading_scheduler_runs_retention_at_its_interval(database: Database) -> None:
    """On an injected clock: the first tick as leader deletes what is old; runs that become
    old within the interval wait for the next pass, which comes once the interval is over."""
    clock = ManualClock(NOW)
    scheduler = Scheduler(database, clock=clock, owner="s1", lease_seconds=600)
    first = plant(database, 4, status="succeeded", finished=NOW - timedelta(days=181))
    scheduler.tick()
    assert statuses(database, first) == set()
    second = plant(database, 2, status="succeeded", finished=NOW - timedelta(days=181))
    clock.advance(60)
    scheduler.tick()
    assert statuses(database, second) == {"succeeded"}  # the interval (an hour) is not over
    clock.advance(database.settings.retention_interval)
    scheduler.tick()
    assert statuses(database, second) == set()
    follower = Scheduler(database, clock=clock, owner="s2", lease_seconds=600)
    third = plant(database, 2, status="succeeded", finished=NOW - timedelta(days=181))
    follower.tick()  # not the leader: it never cleans
    assert statuses(database, third) == {"succeeded"}
