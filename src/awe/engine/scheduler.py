"""Cron schedules: one leader at a time (a lease row), one run per fire time.

A fire creates its run with the idempotency key ``schedule:{id}:{fire_time}``, so a leader that
crashes between creating the run and moving ``next_fire_at`` on, or two leaders in a split
second, still make one run. Fires missed while nothing ran collapse into one run at start-up.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update

from awe.core import metrics
from awe.core.clock import Clock, SystemClock
from awe.core.errors import NotFound, PermissionDenied, ValidationFailed
from awe.core.ids import new_id
from awe.core.logging import get_logger
from awe.engine import retention
from awe.engine.client import Engine
from awe.engine.cron import check_cron, next_fire
from awe.engine.spec import normalise_spec
from awe.storage.database import Database, is_outage
from awe.storage.engine_models import Schedule
from awe.storage.types import UTCDateTime

log = get_logger("scheduler")
LEASE_NAME = "scheduler"
#: Seconds of retention work one tick may do; the rest goes at the next tick, so cron
#: schedules never wait long behind a big clean-up.
RETENTION_SLICE = 5.0
_TS = UTCDateTime()


class Scheduler:
    """Fires due schedules while holding the leader lease."""

    def __init__(
        self,
        db: Database,
        *,
        engine: Engine | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
        lease_seconds: float = 15.0,
        maintenance: Sequence[Callable[[datetime], object]] = (),
    ) -> None:
        self.db = db
        #: Called at each tick as leader, after retention (upper layers' housekeeping: the
        #: deletes an external vector index owes, say); each must be cheap when idle.
        self.maintenance = tuple(maintenance)
        self.clock = clock or SystemClock()
        self.engine = engine or Engine(db, clock=self.clock)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        self.lease_seconds = lease_seconds
        self._retention_due: datetime | None = None  # None: at the first tick as leader

    def create(
        self,
        *,
        name: str,
        spec: dict[str, Any],
        cron: str,
        timezone: str = "UTC",
        inputs: dict[str, Any] | None = None,
        workflow_version: int | None = None,
        project_id: str | None = None,
        trusted: bool = True,
        enabled: bool = True,
    ) -> str:
        """Add (or replace, by name) a schedule; its first fire is the next cron time from now.

        A replaced schedule keeps its enabled state; ``enabled`` is that of a new one.
        ``trusted``: its runs may use privileged kinds (the workflow's pusher was an admin or
        the operator).
        """
        check_cron(cron, timezone)
        normalised = normalise_spec(spec, known_kind=self.engine.registry.knows)
        now = self.clock.now()
        values = {
            "spec": normalised,
            "inputs": inputs or {},
            "cron": cron,
            "timezone": timezone,
            "workflow_version": workflow_version,
            "project_id": project_id,
            "trusted": trusted,
            "next_fire_at": next_fire(cron, timezone, now),
        }
        with self.db.write() as conn:
            existing = conn.execute(select(Schedule.id).where(Schedule.name == name)).scalar()
            if existing:
                conn.execute(update(Schedule).where(Schedule.id == existing).values(**values))
                return str(existing)
            schedule_id = new_id()
            conn.execute(
                insert(Schedule).values(
                    id=schedule_id, name=name, created_at=now, enabled=enabled, **values
                )
            )
            return schedule_id

    def set_enabled(self, schedule_id: str, enabled: bool) -> None:
        """Pause or resume a schedule (resuming fires next at the next cron time from now)."""
        with self.db.write() as conn:
            row = conn.execute(
                select(Schedule.cron, Schedule.timezone).where(Schedule.id == schedule_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"no schedule {schedule_id}")
            values: dict[str, Any] = {"enabled": enabled}
            if enabled:
                values["next_fire_at"] = next_fire(row.cron, row.timezone, self.clock.now())
            conn.execute(update(Schedule).where(Schedule.id == schedule_id).values(**values))

    def is_leader(self) -> bool:
        """Take or renew the leader lease; True while this scheduler holds it."""
        now = self.clock.now()
        try:
            held = self._take_lease(now)
        except Exception:
            metrics.SCHEDULER_LEADER.set(0)  # not known to lead any more
            raise
        metrics.SCHEDULER_LEADER.set(1 if held else 0)
        return held

    def _take_lease(self, now: datetime) -> bool:
        with self.db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO leases (name, owner, expires_at) VALUES (:name, '', :past)"
                    " ON CONFLICT (name) DO NOTHING"
                ).bindparams(bindparam("past", type_=_TS)),
                {"name": LEASE_NAME, "past": now - timedelta(days=1)},
            )
            held = conn.execute(
                text(
                    "UPDATE leases SET owner = :me, expires_at = :expires"
                    " WHERE name = :name AND (owner = :me OR expires_at < :now)"  # ours, or free
                    " RETURNING owner"
                ).bindparams(bindparam("expires", type_=_TS), bindparam("now", type_=_TS)),
                {
                    "me": self.owner,
                    "name": LEASE_NAME,
                    "now": now,
                    "expires": now + timedelta(seconds=self.lease_seconds),
                },
            ).first()
        return held is not None

    def tick(self) -> int:
        """Fire every due schedule if this is the leader; returns how many runs were created."""
        if not self.is_leader():
            return 0
        now = self.clock.now()
        with self.db.read() as conn:
            due = conn.execute(
                select(
                    Schedule.id,
                    Schedule.name,
                    Schedule.spec,
                    Schedule.inputs,
                    Schedule.cron,
                    Schedule.timezone,
                    Schedule.next_fire_at,
                    Schedule.workflow_version,
                    Schedule.project_id,
                    Schedule.trusted,
                )
                .where(Schedule.enabled.is_(True), Schedule.next_fire_at <= now)
                .order_by(Schedule.next_fire_at)
            ).all()
        fired = 0
        for row in due:
            try:
                fired += self._fire(row, now)
            except Exception as exc:
                if is_outage(exc):
                    raise
                # One broken schedule (a timezone that no longer exists, say) must not stop the
                # others: it is paused, with the reason in the log.
                log.exception("schedule could not fire; pausing it", schedule=row.name)
                with self.db.write() as conn:
                    conn.execute(
                        update(Schedule).where(Schedule.id == row.id).values(enabled=False)
                    )
        self._retention(now)
        for chore in self.maintenance:
            try:
                chore(now)
            except Exception as exc:
                if is_outage(exc):
                    raise
                log.exception("a maintenance task failed; it runs again at the next tick")
        return fired

    def _retention(self, now: datetime) -> None:
        """Every AWE_RETENTION_INTERVAL, delete what is older than the retention settings
        (a slice of it per tick until it is all gone)."""
        settings = self.db.settings
        if settings.retention_interval <= 0:
            return
        if self._retention_due is not None and now < self._retention_due:
            return
        try:
            deleted = retention.run(
                self.db,
                retention.Cutoffs.of(settings, now),
                batch_size=settings.retention_batch_size,
                # Well inside the leader lease, which this tick does not renew meanwhile.
                seconds=min(RETENTION_SLICE, self.lease_seconds / 3),
            )
        except Exception as exc:
            if is_outage(exc):
                raise
            log.exception("retention pass failed; it is tried again at the next interval")
            self._retention_due = now + timedelta(seconds=settings.retention_interval)
            return
        # Not done (the slice ran out): go on at the next tick.
        self._retention_due = (
            now if not deleted.done else now + timedelta(seconds=settings.retention_interval)
        )
        if deleted.total:
            log.info("retention deleted old rows", **{k: v for k, v in deleted.rows.items() if v})

    def _fire(self, row: Any, now: datetime) -> int:
        """Fire one due schedule and move it to its next time; 1 if a run was made."""
        fire_time = row.next_fire_at
        key = f"schedule:{row.id}:{fire_time.isoformat()}"
        try:
            run_id: str | None = self.engine.submit(
                row.spec,
                row.inputs,
                idempotency_key=key,
                workflow_version=row.workflow_version,
                project_id=row.project_id,
                trusted=bool(row.trusted),
            )
        except (ValidationFailed, PermissionDenied) as exc:
            # A fire the engine refuses (a required input the schedule does not give, a kind
            # its pusher may not use) is logged and skipped; the schedule goes on to its next
            # time, and so do the others.
            log.error("schedule fire refused", schedule=row.name, error=exc.message)
            run_id = None
        metrics.SCHEDULE_LATENESS.observe(max(0.0, (now - fire_time).total_seconds()))
        # Missed fires collapse: the next fire is the first cron time after now.
        following = next_fire(row.cron, row.timezone, max(now, fire_time))
        with self.db.write() as conn:
            conn.execute(
                update(Schedule)
                .where(Schedule.id == row.id, Schedule.next_fire_at == fire_time)
                .values(next_fire_at=following, last_fire_at=fire_time)
            )
        if run_id is None:
            return 0
        log.info(
            "schedule fired", schedule=row.name, fire_time=fire_time.isoformat(), run_id=run_id
        )
        return 1

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; nothing stops it but ``stop``:
        outages are logged and retried, any other error is logged with its traceback."""
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception as exc:
                    if is_outage(exc):
                        log.warning(
                            "database unavailable; scheduler retries",
                            error=str(exc).splitlines()[0][:200],
                        )
                    else:
                        log.exception("scheduler tick failed; it goes on at the next tick")
                stop.wait(interval)
        finally:
            metrics.SCHEDULER_LEADER.set(0)  # a stopped scheduler leads nothing
