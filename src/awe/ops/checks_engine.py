"""Doctor checks of the engine: live workers for the work waiting, queues nobody serves, how
long ready steps wait, leases nobody reaped, dead-letter growth, a scheduler leading."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from awe.engine import states
from awe.engine.client import Engine
from awe.engine.queue_stats import queue_stats
from awe.engine.scheduler import LEASE_NAME
from awe.ops.doctor import Context, Probe
from awe.ops.report import Outcome, failed, passed, warned
from awe.storage.engine_models import Lease, Schedule, Step

#: Ready steps older than these are slow (warn) or stuck (fail).
WAIT_WARN_SECONDS = 300
WAIT_FAIL_SECONDS = 3600
#: A lease this far past its expiry should have been reaped by any live worker.
REAP_GRACE_SECONDS = 60


def workers(ctx: Context) -> Outcome:
    """A live worker when steps wait; no lost ones."""
    found = Engine(ctx.db).list_workers()
    live = [w for w in found if w.status == "running"]
    lost = [w for w in found if w.status == "lost"]
    ready = sum(q.ready for q in queue_stats(ctx.db))
    data = {"live": len(live), "lost": [w.id for w in lost], "ready_steps": ready}
    if not live and ready:
        return failed(
            f"{ready} step(s) are ready and no worker is live", "awe worker (or awe up)", **data
        )
    if lost:
        return warned(
            f"{len(lost)} worker(s) stopped heartbeating: {', '.join(w.id for w in lost[:5])}",
            "look at those hosts; their steps are reaped when their leases expire",
            **data,
        )
    if not live:
        return warned("no worker is live (nothing is waiting)", "awe worker (or awe up)", **data)
    return passed(f"{len(live)} live worker(s)", **data)


def unserved(ctx: Context) -> Outcome:
    """Every queue with ready steps has a live worker serving it."""
    live = [w for w in Engine(ctx.db).list_workers() if w.status == "running"]
    served = {q for w in live for q in w.queues}
    waiting = {q.name: q.ready for q in queue_stats(ctx.db) if q.ready and q.name not in served}
    if waiting and live:
        shown = ", ".join(f"{name} ({n} ready)" for name, n in sorted(waiting.items()))
        first = sorted(waiting)[0]
        return failed(
            f"no live worker serves {shown}", f"awe worker --queues {first}", queues=waiting
        )
    if waiting:
        return failed(
            f"{sum(waiting.values())} ready step(s) and no live worker at all",
            "awe worker (or awe up)",
            queues=waiting,
        )
    return passed("every queue with ready steps is served")


def oldest_ready(ctx: Context) -> Outcome:
    """How long the oldest ready step has waited."""
    ages = {
        q.name: q.oldest_ready_age_seconds
        for q in queue_stats(ctx.db)
        if q.oldest_ready_age_seconds is not None
    }
    if not ages:
        return passed("no step is waiting")
    queue, age = max(ages.items(), key=lambda item: item[1] or 0.0)
    shown = f"the oldest ready step has waited {age:.0f} s (queue {queue})"
    if age > WAIT_FAIL_SECONDS:
        return failed(shown, "add workers, or raise the queue's limits", seconds=age)
    if age > WAIT_WARN_SECONDS:
        return warned(shown, "add workers, or raise the queue's limits", seconds=age)
    return passed(shown, seconds=age)


def _unreaped(ctx: Context) -> list[str]:
    cutoff = ctx.now - timedelta(seconds=REAP_GRACE_SECONDS)
    with ctx.db.read() as conn:
        rows = conn.execute(
            select(Step.id)
            .where(Step.status == states.RUNNING, Step.lease_expires_at < cutoff)
            .limit(1000)
        ).all()
    return [str(r.id) for r in rows]


def expired_leases(ctx: Context) -> Outcome:
    """No running step sits on a lease that expired a while ago (no worker is reaping)."""
    stale = _unreaped(ctx)
    if stale:
        return warned(
            f"{len(stale)} running step(s) hold leases that expired over"
            f" {REAP_GRACE_SECONDS} s ago: no live worker reaps them",
            "awe doctor --fix (puts them back in the queue), and start a worker",
            steps=stale[:50],
        )
    return passed("no expired lease is left unreaped")


def reap(ctx: Context) -> str:
    """Put steps on long-expired leases back in the queue (what a worker's reaper does)."""
    engine = Engine(ctx.db)
    done = [s for s in _unreaped(ctx) if engine.reap(s) is not None]
    return f"reaped {len(done)} step(s)" if done else ""


def dead_letters(ctx: Context) -> Outcome:
    """Steps that died in the last day, against the day before."""
    day = timedelta(days=1)
    with ctx.db.read() as conn:

        def died(start: timedelta, end: timedelta) -> int:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(Step)
                    .where(
                        Step.status == states.DEAD,
                        Step.finished_at > ctx.now - start,
                        Step.finished_at <= ctx.now - end,
                    )
                ).scalar_one()
            )

        last, before = died(day, timedelta(0)), died(2 * day, day)
        total = int(
            conn.execute(
                select(func.count()).select_from(Step).where(Step.status == states.DEAD)
            ).scalar_one()
        )
    data = {"dead": total, "last_24h": last, "previous_24h": before}
    if last > before and last:
        return warned(
            f"{last} step(s) died in the last 24 h ({before} the day before); {total} dead",
            "awe errors top --since 24h, then awe dlq requeue when fixed",
            **data,
        )
    return passed(f"{total} dead step(s); {last} in the last 24 h", **data)


def scheduler(ctx: Context) -> Outcome:
    """A scheduler leads while any schedule is enabled."""
    with ctx.db.read() as conn:
        enabled = int(
            conn.execute(
                select(func.count()).select_from(Schedule).where(Schedule.enabled.is_(True))
            ).scalar_one()
        )
        lease = conn.execute(
            select(Lease.owner, Lease.expires_at).where(Lease.name == LEASE_NAME)
        ).first()
    if lease is not None and lease.owner and lease.expires_at > ctx.now:
        return passed(f"{lease.owner} leads; {enabled} schedule(s) enabled", leader=lease.owner)
    if enabled:
        return failed(
            f"no scheduler leads: {enabled} enabled schedule(s) will not fire",
            "awe up (or awe scheduler) on one machine",
        )
    return passed("no schedule is enabled (no scheduler needed)")


PROBES = [
    Probe("engine.workers", "engine", "a live worker for the work waiting", workers),
    Probe("engine.unserved_queues", "engine", "every queue is served", unserved),
    Probe("engine.oldest_ready", "engine", "ready steps do not wait long", oldest_ready),
    Probe("engine.expired_leases", "engine", "expired leases are reaped", expired_leases, reap),
    Probe("engine.dead_letters", "engine", "dead letters are not growing", dead_letters),
    Probe("engine.scheduler", "engine", "a scheduler leads", scheduler),
]
