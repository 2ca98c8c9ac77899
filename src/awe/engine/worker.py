"""A worker: claims ready steps, runs them on threads, heartbeats leases, reaps lost ones.

Any worker reaps: a step whose lease expired (its worker was killed) goes back to the queue on
the next heartbeat of any live worker, with no restart of the dead one. Every database call is
retried with backoff when the database is unreachable, so workers ride out a restart.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import TypeVar

from sqlalchemy import delete, insert, update

from awe.core import metrics, tracing
from awe.core.clock import Clock, SystemClock
from awe.core.config import Settings, load_settings
from awe.core.ids import new_id
from awe.core.logging import bind_context, get_logger
from awe.engine import results, transitions
from awe.engine.client import local_wakeup
from awe.engine.context import StepContext
from awe.engine.errors import Failure, classify
from awe.engine.executor import Outcome, execute
from awe.engine.preparation import Preparation
from awe.engine.recording import Recorder
from awe.engine.registry import Registry, default_registry
from awe.engine.secret_refs import Masker
from awe.engine.step_logs import StepLogs
from awe.engine.wakeup import Listener
from awe.engine.worker_support import count_waits, retrying
from awe.storage import privacy
from awe.storage import queue as queue_sql
from awe.storage.database import Database, is_outage
from awe.storage.engine_models import Worker as WorkerRow

log = get_logger("worker")
T = TypeVar("T")


@dataclass
class WorkerOptions:
    """How a worker behaves."""

    queues: list[str] = field(default_factory=lambda: ["default"])
    concurrency: int = 4
    # A killed worker's steps run elsewhere within about lease + heartbeat seconds.
    lease_seconds: float = 6.0
    heartbeat_seconds: float | None = None  # default: a quarter of the lease
    poll_seconds: float = 0.01
    shutdown_grace: float = 30.0
    dry_run: bool = False
    #: (MIN, MAX) slots: start with MIN, grow towards MAX while claims fill every free slot,
    #: give one back after each ``scale_down_seconds`` in which the slots were never all busy.
    #: ``concurrency`` is then not used.
    autoscale: tuple[int, int] | None = None
    scale_down_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.autoscale is not None and not 1 <= self.autoscale[0] <= self.autoscale[1]:
            raise ValueError(f"autoscale needs 1 <= MIN <= MAX, not {self.autoscale}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency needs to be 1 or more, not {self.concurrency}")


#: The longest an idle worker waits between claims while a queue's limit holds back work it
#: sees ready (a rate's next token, a concurrency slot another worker frees).
HELD_BACK_WAIT = 0.1
#: The longest an idle worker with a LISTEN connection waits between looks at its queues: what
#: no notification announces (a retry's delay running out, a lease expiring) is late by at most
#: this much.
MAX_IDLE_WAIT = 0.5


@dataclass
class _InFlight:
    claimed: queue_sql.ClaimedStep
    ctx: StepContext | None = None
    #: Masks the values of the secrets this step was given, in everything it reports.
    masker: Masker = field(default_factory=lambda: Masker([]))
    future: Future[None] | None = None
    #: How long the step ran (seconds), once it has.
    seconds: float = 0.0
    #: Being handed back by a stopping worker: what the step reports now (its cancellation)
    #: is not recorded; the lease goes back to the queue instead.
    releasing: bool = False


class Worker:
    """Runs steps from the database until stopped (or, in burst mode, until nothing is ready)."""

    def __init__(
        self,
        db: Database,
        options: WorkerOptions | None = None,
        *,
        clock: Clock | None = None,
        registry: Registry | None = None,
        worker_id: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.options = options or WorkerOptions()
        self.settings = settings if settings is not None else load_settings()
        self.clock = clock or SystemClock()
        self.registry = registry or default_registry
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        self._stopping = threading.Event()
        self._wake = local_wakeup(db)
        self._listener: Listener | None = None
        #: The queues with limits as of the last heartbeat (None: not read yet, read per claim).
        self._limited: frozenset[str] | None = None
        self._inflight: dict[str, _InFlight] = {}
        self._lock = threading.Lock()
        self._logs = StepLogs(db, self.clock)
        self.executed = 0
        self._results: SimpleQueue[tuple[queue_sql.ClaimedStep, Outcome]] = SimpleQueue()
        self._reporter_stop = threading.Event()
        self._prepare = Preparation(db, self.settings, self.registry)
        scale = self.options.autoscale
        #: The step slots in use now: fixed, or moved between the autoscale bounds.
        self._slots = scale[0] if scale else self.options.concurrency
        self._saturated_at = time.monotonic()
        self._looked_at = 0.0  # when autoscaling last looked for work no slot could take
        self._recorder = Recorder(
            db,
            self.clock,
            self._logs,
            lambda action, what: self._retrying(action, what, forever=True),
            self._seconds_of,
        )

    # --------------------------------------------------------------------------- control

    def stop(self) -> None:
        """Stop claiming; running steps finish (or are released after the grace period)."""
        self._stopping.set()
        self._wake.set()

    def drain(self) -> int:
        """Run in this process until no step is ready and none is running; return steps run."""
        self.run(burst=True)
        return self.executed

    def run(self, *, burst: bool = False) -> None:
        """The main loop."""
        heartbeat = self.options.heartbeat_seconds or self.options.lease_seconds / 4
        with bind_context(worker_id=self.id):
            self._retrying(self._register, "register")
            most = self.options.autoscale[1] if self.options.autoscale else self._slots
            pool = ThreadPoolExecutor(most, thread_name_prefix="awe-step")
            beat = threading.Thread(target=self._beat_loop, args=(heartbeat,), daemon=True)
            beat.start()
            reporter = threading.Thread(target=self._report_loop, name="awe-report", daemon=True)
            reporter.start()
            listener = None if burst else Listener.start_for(self.db, self._wake)
            self._listener = listener
            metrics.WORKER_UP.inc()
            metrics.WORKER_SLOTS.labels("free").inc(self._slots)
            log.info(
                "worker started",
                queues=",".join(self.options.queues),
                concurrency=self._slots,
                autoscale=self.options.autoscale,
            )
            try:
                try:
                    self._loop(pool, burst=burst)
                finally:
                    self._shutdown(pool)
                    self._reporter_stop.set()
                    reporter.join(timeout=60)
                    if listener is not None:
                        listener.stop()
                    self._stopping.set()
                    beat.join(timeout=heartbeat + 5)
                    self._retrying(self._logs.flush, "flush events", attempts=5)
                    self._retrying(self._unregister, "unregister", attempts=5)
            finally:  # even when stopping itself failed: this process no longer works
                metrics.WORKER_UP.dec()
                metrics.WORKER_SLOTS.labels("free").dec(self._slots)
            log.info("worker stopped", executed=self.executed)

    def _loop(self, pool: ThreadPoolExecutor, *, burst: bool) -> None:
        idle = False
        wait = self.options.poll_seconds
        while not self._stopping.is_set():
            # Read before claiming: a step finishing during the claim may have readied others.
            busy_before = bool(self._inflight)
            free = self._slots - len(self._inflight)
            claimed: list[queue_sql.ClaimedStep] = []
            # When idle, a read-only probe decides whether a (write) claim is worth it.
            ready = False  # the probe found work ready (claimed or not)
            try:
                if free > 0 and (not idle or (ready := bool(self._retrying(self._probe, "poll")))):
                    claimed = self._retrying(functools.partial(self._claim, free), "claim") or []
            except Exception:  # the loop must not die: log it, wait a moment, try again
                log.exception("claiming failed; trying again shortly")
                self._stopping.wait(1.0)
                continue
            for step in claimed:
                self._start(pool, step)
            self._scale(full=free <= 0 or len(claimed) == free)
            idle = not claimed and not busy_before
            if claimed and len(claimed) == free:
                continue  # there may be more: claim again at once when a slot frees
            if burst and not claimed and not busy_before and not self._inflight:
                return
            if self._wake.wait(wait):
                idle = False  # told that work is ready: claim without probing
            self._wake.clear()
            wait = self._next_wait(wait, idle, held_back=idle and ready)

    def _waiting(self) -> bool:
        """A read-only look for ready work; False when the look itself fails (logged)."""
        try:
            return bool(self._retrying(self._probe, "poll"))
        except Exception:  # the loop must not die of it: grow at a later look
            log.exception("looking for waiting work failed")
            return False

    def _scale(self, *, full: bool) -> None:
        """Autoscaling: while every slot is taken (``full``) and a read-only look finds more
        work ready, grow by half (one at least), up to MAX, looking at most every
        HELD_BACK_WAIT; give one slot back after each ``scale_down_seconds`` in which the slots
        were never all busy, down to MIN. Shrinking only claims less: a running step keeps its
        slot, its thread and its lease until it ends."""
        bounds = self.options.autoscale
        if bounds is None:
            return
        low, high = bounds
        now = time.monotonic()
        before = self._slots
        if full or len(self._inflight) >= self._slots:
            self._saturated_at = now
            if self._slots < high and now - self._looked_at >= HELD_BACK_WAIT:
                self._looked_at = now
                if self._waiting():  # work is ready that no slot can take
                    self._slots = min(high, self._slots + max(1, self._slots // 2))
        elif self._slots > low and now - self._saturated_at > self.options.scale_down_seconds:
            self._slots -= 1
            self._saturated_at = now
        if self._slots != before:
            metrics.WORKER_SLOTS.labels("free").inc(self._slots - before)
            log.info("worker slots changed", slots=self._slots, was=before)

    def _next_wait(self, wait: float, idle: bool, *, held_back: bool = False) -> float:
        """How long to wait for work next: the poll interval, doubled on every idle round up
        to MAX_IDLE_WAIT while a LISTEN connection is in place to wake this worker the moment
        work is queued (PostgreSQL). Without one (SQLite, or the listener reconnecting) other
        processes' work is found only by polling, so the interval stays short. ``held_back``:
        the probe saw ready work a queue's limit kept this worker from claiming; it becomes
        claimable without a notification (a token refills, a slot frees), so the wait grows
        to HELD_BACK_WAIT only."""
        poll = self.options.poll_seconds
        if held_back:
            return max(poll, min(wait * 2, HELD_BACK_WAIT))
        listener = self._listener
        if not idle or listener is None or not listener.listening.is_set():
            return poll
        return max(poll, min(wait * 2, MAX_IDLE_WAIT))

    def _probe(self) -> bool:
        with self.db.read() as conn:
            return queue_sql.has_ready(conn, queues=self.options.queues, now=self.clock.now())

    def _claim(self, limit: int) -> list[queue_sql.ClaimedStep]:
        with self.db.write() as conn:
            now = self.clock.now()  # once the write lock is held: the lease starts now
            claimed = queue_sql.claim(
                conn,
                owner=self.id,
                queues=self.options.queues,
                limit=limit,
                now=now,
                lease_seconds=self.options.lease_seconds,
                limited=self._limited,
            )
            # Their runs turn 'running' and the 'running' events are written in the claim's
            # transaction: a few statements for the batch, none per step.
            transitions.start_claimed(
                conn, [(c.run_id, c.step_key, c.attempt) for c in claimed], now=now, worker=self.id
            )
            metrics.after_commit(conn, functools.partial(count_waits, claimed, now))
        return claimed

    # ------------------------------------------------------------------------ executing

    def _start(self, pool: ThreadPoolExecutor, step: queue_sql.ClaimedStep) -> None:
        timeout = step.definition.get("timeout")
        entry = _InFlight(step)
        entry.ctx = StepContext(
            run_id=step.run_id,
            step_id=step.id,
            step_key=step.step_key,
            attempt=step.attempt,
            dry_run=self.options.dry_run or bool(step.definition.get("dry_run")),
            deadline=time.monotonic() + float(timeout) if timeout else None,
            timeout=float(timeout) if timeout else None,
            emit=self._logs.emitter(
                token=step.lease_token,
                run_id=step.run_id,
                step_key=step.step_key,
                masker=lambda: entry.masker,
            ),
            settings=self.settings,
            db=self.db,
        )
        # In-flight work is keyed by its lease token: a retry with no backoff may be claimed
        # again (a new token) before this attempt's result is recorded.
        with self._lock:
            self._inflight[step.lease_token] = entry
        metrics.WORKER_SLOTS.labels("used").inc()
        metrics.WORKER_SLOTS.labels("free").dec()
        entry.future = pool.submit(self._execute, entry)

    def _execute(self, entry: _InFlight) -> None:
        step = entry.claimed
        recorded = False
        try:
            started = time.monotonic()
            with (
                bind_context(run_id=step.run_id, step_id=step.step_key),
                tracing.under_run(
                    f"step {step.step_key}",
                    trace_id=step.trace_id,
                    run_id=step.run_id,
                    attributes={
                        "awe.run_id": step.run_id,
                        "awe.step": step.step_key,
                        "awe.kind": step.kind,
                        "awe.queue": step.queue,
                        "awe.attempt": step.attempt,
                    },
                ) as span,
            ):
                outcome = self._outcome(entry)
                if outcome.failure is not None:
                    span.set({"awe.error.category": outcome.failure.category})
                    span.fail(outcome.failure.category)  # never the message: it may quote a secret
            entry.seconds = time.monotonic() - started
            if not entry.releasing:
                self._results.put((step, outcome))
                recorded = True
        finally:
            if not recorded:  # released, or the thread itself is dying (the lease will expire)
                self._forget(step)

    def _outcome(self, entry: _InFlight) -> Outcome:
        """Check the step may run, give it its secrets, run it; what it reports is masked.

        Whatever goes wrong on the way (the database out while reading secrets, a scrubber
        that fails) is this step's failure, recorded now: never an attempt left to expire.
        """
        try:
            return self._run_one(entry)
        except Exception as exc:  # noqa: BLE001 - the step's own failure, classified
            found = classify(exc)
            category = "connection" if is_outage(exc) else found.category
            message = privacy.readable(
                entry.masker.text(f"awe could not run this step: {found.message}")
            )
            return Outcome(failure=Failure(category, str(message), found.retryable))

    def _run_one(self, entry: _InFlight) -> Outcome:
        step, ctx = entry.claimed, entry.ctx
        assert ctx is not None
        prepared = self._prepare(step)
        entry.masker = prepared.masker
        if prepared.failure is not None:
            outcome = Outcome(failure=prepared.failure)
        else:
            outcome = execute(
                self.registry,
                step.kind,
                ctx,
                prepared.params,
                each="for_each" in step.definition,
                parallel=int(step.definition.get("parallel", 1)),
            )
        if outcome.failure is not None:
            failure = outcome.failure
            message = privacy.readable(entry.masker.text(failure.message))
            return Outcome(failure=Failure(failure.category, message, failure.retryable))
        return Outcome(output=entry.masker.value(outcome.output))

    def _forget(self, step: queue_sql.ClaimedStep) -> None:
        self._drop(step)
        self.executed += 1
        self._wake.set()

    def _drop(self, step: queue_sql.ClaimedStep) -> None:
        """The step no longer holds a slot here."""
        with self._lock:
            if self._inflight.pop(step.lease_token, None) is not None:
                metrics.WORKER_SLOTS.labels("used").dec()
                metrics.WORKER_SLOTS.labels("free").inc()

    def _report_loop(self) -> None:
        """Record outcomes in batches: one transaction for every result pending (group commit)."""
        while True:
            try:
                batch = [self._results.get(timeout=0.05)]
            except Empty:
                if self._reporter_stop.is_set():
                    return
                continue
            while len(batch) < 256:
                try:
                    batch.append(self._results.get_nowait())
                except Empty:
                    break
            try:
                self._record(batch)
            except Exception:
                # Never lose the loop to a bug; the leases of this batch expire and are re-run.
                log.exception("could not record step results", steps=len(batch))
            for step, _ in batch:
                self._forget(step)

    def _seconds_of(self, token: str) -> float | None:
        """How long the step of this claim ran (None: it is not held here)."""
        entry = self._inflight.get(token)
        return None if entry is None else entry.seconds

    def _record(self, batch: list[tuple[queue_sql.ClaimedStep, Outcome]]) -> None:
        """Record a batch of results (see engine/recording.py)."""
        self._recorder.record(batch)

    # ------------------------------------------------------------------------ heartbeat

    def _beat_loop(self, interval: float) -> None:
        next_flush = 0.0
        next_beat = 0.0
        while not self._stopping.is_set() or self._inflight:
            now = time.monotonic()
            if now >= next_flush:
                self._survive(self._logs.flush, "flush events")
                next_flush = now + 0.25
            if now >= next_beat:
                self._survive(self._heartbeat, "heartbeat")
                self._survive(self._reap, "reap")
                next_beat = now + interval
            time.sleep(min(0.05, interval))

    def _survive(self, action: Callable[[], None], what: str) -> None:
        """Run one beat of a loop that must never stop: log whatever it raises, go on."""
        try:
            self._retrying(action, what, attempts=1)
        except Exception:
            log.exception(f"{what} failed; trying again at the next beat")

    def _heartbeat(self) -> None:
        with self._lock:
            entries = dict(self._inflight)
        with self.db.write() as conn:
            # Read the clock once the write lock is held: waiting for it must not shorten the
            # lease being renewed.
            now = self.clock.now()
            held = queue_sql.heartbeat(
                conn, tokens=list(entries), now=now, lease_seconds=self.options.lease_seconds
            )
            conn.execute(
                update(WorkerRow)
                .where(WorkerRow.id == self.id)
                .values(heartbeat_at=now, concurrency=self._slots)  # autoscaling moves it
            )
            # Which of its queues have limits, for the claims until the next beat: a limit set
            # meanwhile holds from then on (a claim reads a limited queue's row every time).
            self._limited = queue_sql.limited_queues(conn, self.options.queues)
        for token, entry in entries.items():
            # Cancel requested for its run, or lease lost (its result would be refused): stop.
            if held.get(token, True) and entry.ctx is not None:
                entry.ctx.cancel_event.set()

    def _reap(self) -> None:
        now = self.clock.now()
        with self.db.read() as conn:
            expired = queue_sql.expired_lease_claims(conn, now=now)
        with self._lock:
            # This worker's own claims are alive (running, or their result waiting to be
            # recorded behind a long transaction): their heartbeat renews them, never reap them.
            mine = set(self._inflight)
        for step_id in (step for step, token in expired if token not in mine):
            try:
                with self.db.write() as conn:
                    status = results.reap_one(conn, step_id=step_id, now=now)
            except Exception as exc:  # one step that cannot be reaped must not block the others
                if is_outage(exc):
                    raise
                log.exception("could not reap a step; the others go on", step_id=step_id)
                continue
            if status is not None:
                log.warning(
                    "lease expired: step returned to the queue", step_id=step_id, now_status=status
                )
                self._wake.set()

    # ------------------------------------------------------------------------ lifecycle

    def _register(self) -> None:
        now = self.clock.now()
        with self.db.write() as conn:
            conn.execute(delete(WorkerRow).where(WorkerRow.id == self.id))
            conn.execute(
                insert(WorkerRow).values(
                    id=self.id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    queues=self.options.queues,
                    concurrency=self._slots,
                    status="running",
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def _unregister(self) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(WorkerRow)
                .where(WorkerRow.id == self.id)
                .values(status="stopped", heartbeat_at=self.clock.now())
            )

    def _shutdown(self, pool: ThreadPoolExecutor) -> None:
        deadline = time.monotonic() + self.options.shutdown_grace
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            leftover = list(self._inflight.values())
        for entry in leftover:
            entry.releasing = True  # before stopping it: its cancellation is no failure
            if entry.ctx is not None:
                entry.ctx.cancel_event.set()
            step = entry.claimed
            try:
                self._retrying(functools.partial(self._release, step), "release lease", attempts=3)
            except Exception:  # the others still get released; this lease expires by itself
                log.exception("could not release a step", step=step.step_key)
            self._drop(step)
        pool.shutdown(wait=False, cancel_futures=True)

    def _release(self, step: queue_sql.ClaimedStep) -> None:
        with self.db.write() as conn:
            results.release(
                conn,
                run_id=step.run_id,
                step_id=step.id,
                token=step.lease_token,
                now=self.clock.now(),
            )

    def _retrying(
        self, action: Callable[[], T], what: str, *, attempts: int = 0, forever: bool = False
    ) -> T | None:
        """Run ``action``, retrying while the database is out (see worker_support.retrying)."""
        return retrying(action, what, self._stopping, attempts=attempts, forever=forever)
