"""Schedules (leader lease, one run per fire, missed fires collapse) and limit slots coming back."""

from __future__ import annotations

import time

import pytest

from awe.core.errors import ValidationFailed
from awe.engine.client import Engine
from awe.engine.scheduler import Scheduler
from awe.storage import queue as queue_sql
from awe.storage.database import Database
from tests.support.clock import ManualClock

SPEC = {"name": "nightly", "steps": [{"id": "a", "kind": "noop"}]}


def test_two_schedulers_fire_each_time_once(database: Database, clock: ManualClock) -> None:
    """Two schedulers ticking over N fire times create exactly N runs, one leader at a time."""
    first = Scheduler(database, clock=clock, owner="s1", lease_seconds=30)
    second = Scheduler(database, clock=clock, owner="s2", lease_seconds=30)
    first.create(name="every-minute", spec=SPEC, cron="* * * * *")
    for _ in range(10):
        clock.advance(60)
        first.tick()
        second.tick()
        second.tick()
    runs = Engine(database).list_runs(limit=100)
    assert len(runs) == 10
    assert len({r.idempotency_key for r in runs}) == 10
    assert first.is_leader()
    assert not second.is_leader()


def test_leader_lease_passes_on_when_leader_stops(database: Database, clock: ManualClock) -> None:
    """When the leader stops renewing, another scheduler takes over after the lease expires."""
    first = Scheduler(database, clock=clock, owner="s1", lease_seconds=10)
    second = Scheduler(database, clock=clock, owner="s2", lease_seconds=10)
    assert first.is_leader()
    assert not second.is_leader()
    clock.advance(11)
    assert second.is_leader()
    assert not first.is_leader()


def test_missed_fires_run_once(database: Database, clock: ManualClock) -> None:
    """After a long outage, the missed fires of a schedule make one run, not one per slot."""
    scheduler = Scheduler(database, clock=clock, owner="s1")
    scheduler.create(name="hourly", spec=SPEC, cron="0 * * * *")
    clock.advance(10 * 3600)
    assert scheduler.tick() == 1
    assert scheduler.tick() == 0
    clock.advance(3600)
    assert scheduler.tick() == 1
    assert len(Engine(database).list_runs()) == 2


def test_timezone_is_honoured(database: Database, clock: ManualClock) -> None:
    """A daily 03:00 schedule in Europe/Paris fires at 02:00 UTC in winter."""
    scheduler = Scheduler(database, clock=clock, owner="s1")
    scheduler.create(name="paris", spec=SPEC, cron="0 3 * * *", timezone="Europe/Paris")
    clock.advance(26 * 3600)
    scheduler.tick()
    (run,) = Engine(database).list_runs()
    assert run.idempotency_key is not None
    assert run.idempotency_key.endswith("2026-01-01T02:00:00+00:00")


@pytest.mark.parametrize(
    ("cron", "tz", "expected"),
    [("61 * * * *", "UTC", "not a cron expression"), ("@daily", "Mars/Olympus", "IANA")],
)
def test_bad_schedule_is_refused(database: Database, cron: str, tz: str, expected: str) -> None:
    """A bad cron expression or timezone is refused with what would be right."""
    with pytest.raises(ValidationFailed, match=expected):
        Scheduler(database).create(name="bad", spec=SPEC, cron=cron, timezone=tz)


def test_limit_slots_come_back_after_lease_expiry(database: Database, clock: ManualClock) -> None:
    """A dead worker's slots of a limited queue free up when its leases expire, never before."""
    engine = Engine(database, clock=clock)
    engine.set_queue_limits("limited", concurrency=3)
    for i in range(8):
        engine.submit(SPEC, queue="limited", idempotency_key=f"l{i}")

    def claim(owner: str) -> int:
        with database.write() as conn:
            return len(
                queue_sql.claim(
                    conn,
                    owner=owner,
                    queues=["limited"],
                    limit=10,
                    now=clock.now(),
                    lease_seconds=lease,
                )
            )

    # SQLite reads the worker's clock (moved by hand); PostgreSQL its own (so the test waits).
    lease = 5.0 if database.is_sqlite else 1.0
    assert claim("dead-worker") == 3
    assert claim("live-worker") == 0
    clock.advance(4)
    assert claim("live-worker") == 0  # the leases still hold the slots
    clock.advance(2)
    if not database.is_sqlite:
        time.sleep(1.2)
    assert claim("live-worker") == 3
    assert claim("live-worker") == 0
