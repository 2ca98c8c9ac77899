"""The engine's Python API: submit, cancel, requeue, resume, fork, and reading what happened."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from awe.core.clock import Clock, SystemClock
from awe.core.errors import Conflict, NotFound, ValidationFailed
from awe.engine import (
    children,
    creation,
    listing,
    permissions,
    reopen,
    results,
    states,
    transitions,
)
from awe.engine.inputs import resolve_inputs
from awe.engine.listing import DeadLetterFilter as DeadLetterFilter
from awe.engine.listing import RunFilter
from awe.engine.records import EventRecord, RunRecord, StepRecord, WorkerRecord
from awe.engine.registry import Registry, default_registry
from awe.engine.spec import (
    CHILD_KIND,
    as_dry_run,
    downstream_of,
    normalise_spec,
)
from awe.engine.template_refs import spec_secrets
from awe.storage import queue as queue_sql
from awe.storage import secret_store
from awe.storage.database import Database
from awe.storage.engine_models import Queue, Run, RunEvent, Step
from awe.storage.engine_models import Worker as WorkerRow

#: The most runs one :meth:`Engine.submit_many` creates.
MAX_BATCH = 1000
#: How many times a submit whose keys other submits took meanwhile looks again for their runs.
_KEY_RACE_ROUNDS = 5
_wakeups: dict[int, threading.Event] = {}
# Whole-table selects as plain columns (a Connection hands back rows, not ORM objects).
_RUNS = Run.__table__
_STEPS = Step.__table__
_EVENTS = RunEvent.__table__


def local_wakeup(db: Database) -> threading.Event:
    """The in-process signal set when work becomes ready on ``db`` (SQLite's fast path)."""
    return _wakeups.setdefault(id(db.engine), threading.Event())


class Engine:
    """Durable runs on one database. Thread-safe; cheap to create."""

    def __init__(
        self, db: Database, *, clock: Clock | None = None, registry: Registry | None = None
    ) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self.registry = registry or default_registry

    # ------------------------------------------------------------------------- writing

    def submit(
        self,
        spec: dict[str, Any],
        inputs: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        trace_id: str | None = None,
        project_id: str | None = None,
        workflow_version: int | None = None,
        dry_run: bool = False,
        trusted: bool = True,
    ) -> str:
        """Create a run of ``spec``; with an idempotency key already used, return that run.

        ``inputs`` are checked against the declared ones (types, required) and defaults filled
        in; strings are converted to the declared type, as from a command line.

        A dry run's steps preview their effects (DRY_RUN=true for scripts, no request that
        changes anything sent), whichever worker runs them.

        ``trusted`` runs may use privileged kinds: this Python API is the operator's, so it is
        the default; the services pass False for what members start (engine/permissions.py).
        """
        return self._submit(
            spec,
            [inputs],
            [idempotency_key],
            labelled=False,
            priority=priority,
            queue=queue,
            trace_id=trace_id,
            project_id=project_id,
            workflow_version=workflow_version,
            dry_run=dry_run,
            trusted=trusted,
        )[0]

    def submit_many(
        self,
        spec: dict[str, Any],
        inputs: Sequence[dict[str, Any] | None],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        priority: int | None = None,
        queue: str | None = None,
        trace_id: str | None = None,
        project_id: str | None = None,
        workflow_version: int | None = None,
        dry_run: bool = False,
        trusted: bool = True,
        on_created: Callable[[Connection, list[str]], None] | None = None,
    ) -> list[str]:
        """Create a run of ``spec`` for each of ``inputs`` in one transaction; their ids, in order.

        As :meth:`submit`, each with its own idempotency key (None for none): a key used
        before, or twice in the batch, gives that one run. Every run's inputs are checked
        before any is written, and a bad one refuses the whole batch (ValidationFailed naming
        ``runs[i]``). At most :data:`MAX_BATCH` runs. ``on_created`` is called with the ids of
        the runs this call created (not those its keys found), inside the transaction that
        creates them: what it writes (an audit entry per run) commits with them, or neither.
        """
        keys: list[str | None] = (
            list(idempotency_keys) if idempotency_keys is not None else [None] * len(inputs)
        )
        if len(keys) != len(inputs):
            raise ValidationFailed(
                f"{len(inputs)} runs but {len(keys)} idempotency keys: give one per run (or None)"
            )
        if len(inputs) > MAX_BATCH:
            raise ValidationFailed(
                f"a batch may start {MAX_BATCH:,} runs at most, not {len(inputs):,}: split it"
            )
        if not inputs:
            return []
        return self._submit(
            spec,
            list(inputs),
            keys,
            labelled=True,
            priority=priority,
            queue=queue,
            trace_id=trace_id,
            project_id=project_id,
            workflow_version=workflow_version,
            dry_run=dry_run,
            trusted=trusted,
            on_created=on_created,
        )

    def _submit(
        self,
        spec: dict[str, Any],
        inputs: list[dict[str, Any] | None],
        keys: list[str | None],
        *,
        labelled: bool,
        queue: str | None,
        priority: int | None,
        trace_id: str | None,
        project_id: str | None,
        workflow_version: int | None,
        dry_run: bool,
        trusted: bool,
        on_created: Callable[[Connection, list[str]], None] | None = None,
    ) -> list[str]:
        settings = self.db.settings
        normalised = normalise_spec(spec, known_kind=self.registry.knows)
        if not trusted:
            permissions.check_member_spec(normalised, settings=settings, registry=self.registry)
        resolved = []
        for i, given in enumerate(inputs):
            try:
                resolved.append(resolve_inputs(normalised, dict(given or {})))
            except ValidationFailed as exc:
                if not labelled:
                    raise
                raise ValidationFailed(f"runs[{i}]: {exc.message}") from None
        if dry_run:
            normalised = as_dry_run(normalised)
        found = self._by_keys(keys)
        if found is not None and all(k is not None and k in found for k in keys):
            return [found[k] for k in keys if k is not None]  # every one was started before
        project_key = project_id or ""
        needed_secrets = spec_secrets(normalised)
        if needed_secrets or any(step["kind"] == CHILD_KIND for step in normalised["steps"]):
            with self.db.read() as conn:
                self._check_secrets(conn, needed_secrets, project_key)
                normalised = children.pin_versions(
                    conn, normalised, project_key=project_key, trusted=trusted
                )
                children.check_calls(
                    conn,
                    normalised,
                    project_key=project_key,
                    max_depth=settings.max_workflow_depth,
                )
        for attempt in range(1, _KEY_RACE_ROUNDS + 1):
            known = found or {}
            # One run per key: a key used before, or earlier in this batch, gives that run.
            wanted: dict[str | None, int] = {}
            new: list[creation.NewRun] = []
            slots: list[int | str] = []
            for key, values in zip(keys, resolved, strict=True):
                if key is not None and key in known:
                    slots.append(known[key])
                    continue
                if key is not None and key in wanted:
                    slots.append(wanted[key])
                    continue
                if key is not None:
                    wanted[key] = len(new)
                slots.append(len(new))
                new.append(
                    creation.NewRun(
                        spec=normalised,
                        inputs=values,
                        queue=queue,
                        priority=priority,
                        idempotency_key=key,
                        trace_id=trace_id,
                        project_id=project_id,
                        workflow_version=workflow_version,
                        trusted=trusted,
                    )
                )
            try:
                with self.db.write() as conn:
                    created = creation.create_runs(conn, new, now=self.clock.now())
                    if on_created is not None:
                        on_created(conn, created)
            except IntegrityError:
                # A concurrent submit with one of these keys won the race: theirs is the run.
                # Look again while each round finds more of them (other batches may win some).
                found = self._by_keys(keys)
                if attempt == _KEY_RACE_ROUNDS or len(found or {}) <= len(known):
                    raise
                continue
            break
        local_wakeup(self.db).set()
        return [slot if isinstance(slot, str) else created[slot] for slot in slots]

    @staticmethod
    def _check_secrets(conn: Any, needed: dict[str, str], project_key: str) -> None:
        """Refuse a run whose steps read secrets the project does not have (ValidationFailed)."""
        if not needed:
            return
        have = {name for name, _, _ in secret_store.names(conn, project_key=project_key)}
        missing = [
            f"step {step!r} reads secrets.{name}"
            for name, step in needed.items()
            if name not in have
        ]
        if missing:
            where = "the default project" if not project_key else "its project"
            raise ValidationFailed(
                "; ".join(missing) + f", which is not set in {where} (awe secrets set NAME)"
            )

    def _by_keys(self, keys: list[str | None]) -> dict[str, str] | None:
        """The runs these idempotency keys were used for (None when no key was given)."""
        wanted = sorted({key for key in keys if key is not None})
        if not wanted:
            return None
        found: dict[str, str] = {}
        with self.db.read() as conn:
            for start in range(0, len(wanted), 500):  # bound the IN list (SQLite's parameters)
                part = wanted[start : start + 500]
                rows = conn.execute(
                    select(Run.idempotency_key, Run.id).where(Run.idempotency_key.in_(part))
                )
                found.update({str(key): str(run_id) for key, run_id in rows})
        return found

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: waiting steps at once; running ones see it on their next heartbeat.

        Child runs of its workflow steps are cancelled too, each after the parent.
        """
        now = self.clock.now()
        with self.db.write() as conn:
            run = transitions.lock_run(conn, run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if run.status in states.RUN_FINAL:
                raise Conflict(f"run {run_id} is already {run.status}")
            open_children = reopen.cancel_run(conn, run, now)
        for child_id in open_children:
            with contextlib.suppress(Conflict):  # it finished meanwhile
                self.cancel(child_id)
        return self.get_run(run_id)

    def requeue(
        self, step_ids: list[str] | None = None, *, where: DeadLetterFilter | None = None
    ) -> list[str]:
        """Put dead steps back in the queue with fresh attempts; returns the ids requeued."""
        if step_ids is None and where is None:
            raise ValidationFailed("requeue needs step ids or a filter")
        ids = step_ids if step_ids is not None else [s.id for s in self.dead_letters(where)]
        requeued: list[str] = []
        now = self.clock.now()
        with self.db.write() as conn:
            runs = (
                conn.execute(select(Step.run_id).where(Step.id.in_(ids)).distinct()).scalars().all()
            )
            transitions.lock_family(conn, list(runs))  # all of them at once, in id order
            for run_id in sorted(runs):
                requeued += reopen.reopen(conn, run_id, now, step_ids=ids)
        local_wakeup(self.db).set()
        return requeued

    def resume(self, run_id: str) -> list[str]:
        """Re-queue a run's dead and cancelled steps (and un-skip what they blocked)."""
        now = self.clock.now()
        with self.db.write() as conn:
            if transitions.lock_run(conn, run_id) is None:
                raise NotFound(f"no run {run_id}")
            reopened = reopen.reopen(conn, run_id, now)
        if not reopened:
            raise Conflict(f"run {run_id} has no dead or cancelled step to resume")
        local_wakeup(self.db).set()
        return reopened

    def fork(self, run_id: str, from_step: str) -> str:
        """A new run of the same spec and inputs that reuses every output not downstream of
        ``from_step``; ``from_step`` and what depends on it run again."""
        run = self.get_run(run_id)
        keys = {s.step_key: s for s in run.steps}
        if from_step not in keys:
            raise NotFound(f"run {run_id} has no step {from_step!r}")
        again = downstream_of({from_step}, {k: s.needs for k, s in keys.items()})
        reused = {
            k: s.output for k, s in keys.items() if k not in again and s.status == states.SUCCEEDED
        }
        with self.db.write() as conn:
            new_id = creation.create_run(
                conn,
                spec=run.spec,
                inputs=run.inputs,
                now=self.clock.now(),
                queue=run.queue,
                priority=run.priority,
                project_id=run.project_id,
                parent_run_id=run_id,
                forked_from_step=from_step,
                reused=reused,
                trusted=run.trusted,
            )
        local_wakeup(self.db).set()
        return new_id

    def set_queue_limits(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate_per_second: float | None = None,
        burst: float | None = None,
    ) -> None:
        """Set (or clear, with None) a queue's concurrency limit and rate limit."""
        with self.db.write() as conn:
            exists = conn.execute(select(Queue.name).where(Queue.name == name)).scalar()
            values = {
                "concurrency_limit": concurrency,
                "rate_per_second": rate_per_second,
                "burst": burst if burst is not None else max(1.0, rate_per_second or 1.0),
                "tokens_at": None,
            }
            if exists:
                conn.execute(update(Queue).where(Queue.name == name).values(**values))
            else:
                conn.execute(insert(Queue).values(name=name, tokens=0.0, **values))

    # ------------------------------------------------------------------------- reading

    def get_run(self, run_id: str) -> RunRecord:
        """One run with its steps; NotFound if there is none."""
        with self.db.read() as conn:
            run = conn.execute(select(_RUNS).where(Run.id == run_id)).one_or_none()
            if run is None:
                raise NotFound(f"no run {run_id}")
            steps = conn.execute(
                select(_STEPS).where(Step.run_id == run_id).order_by(Step.created_at, Step.id)
            ).all()
        order = {step["id"]: i for i, step in enumerate(run.spec["steps"])}
        records = sorted(
            (StepRecord.from_row(s._mapping) for s in steps),
            key=lambda s: order.get(s.step_key, len(order)),
        )
        return RunRecord.from_row(run._mapping, records)

    def child_runs(self, run_id: str) -> dict[str, RunRecord]:
        """The newest child run of each of a run's workflow steps, by step key."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_RUNS, Step.step_key.label("_parent_key"))
                .join(Step, Step.id == Run.parent_step_id)
                .where(Step.run_id == run_id)
                .order_by(Run.id)
            ).all()
        return {r._parent_key: RunRecord.from_row(r._mapping, None) for r in rows}

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        limit: int = 50,
        before: str | None = None,
        project_id: str | None = None,
        project_ids: frozenset[str] | None = None,
    ) -> list[RunRecord]:
        """Runs newest first, filtered; ``before`` is a run id to page from.

        ``project_ids`` keeps runs of those projects only (None: any project, or none).
        """
        where = RunFilter(
            statuses=frozenset({status}) if status else frozenset(),
            workflow=workflow,
            queue=queue,
            project_id=project_id,
            project_ids=project_ids,
        )
        return listing.list_runs(self.db, where, limit=limit, before=before)

    def dead_letters(
        self, where: DeadLetterFilter | None = None, *, limit: int = 1000
    ) -> list[StepRecord]:
        """Dead steps (the dead-letter queue), oldest first, filtered."""
        found = listing.dead_letters(
            self.db, where or DeadLetterFilter(), self.clock.now(), limit=limit
        )
        return [step for step, _ in found]

    def expired_leases(self) -> list[str]:
        """Ids of running steps whose lease has expired (their worker died or stalled), up to
        100: what a live worker's reaper would put back in the queue."""
        with self.db.read() as conn:
            return queue_sql.expired_leases(conn, now=self.clock.now())

    def reap(self, step_id: str) -> str | None:
        """Put a step whose lease expired back in the queue (or dead letters, out of
        attempts), as a worker's reaper does; its new status, or None if it was not expired."""
        with self.db.write() as conn:
            return results.reap_one(conn, step_id=step_id, now=self.clock.now())

    def list_workers(
        self, *, stale_after: float = 90.0, include_stopped: bool = False
    ) -> list[WorkerRecord]:
        """Registered workers; a running one silent for ``stale_after`` seconds shows as 'lost'."""
        statement = select(WorkerRow.__table__).order_by(WorkerRow.started_at)
        if not include_stopped:
            statement = statement.where(WorkerRow.status != "stopped")
        with self.db.read() as conn:
            rows = conn.execute(statement).all()
        cutoff = self.clock.now() - timedelta(seconds=stale_after)
        records = []
        for row in rows:
            record = WorkerRecord.from_row(row._mapping)
            if record.status == "running" and record.heartbeat_at < cutoff:
                record = WorkerRecord(**{**record.__dict__, "status": "lost"})
            records.append(record)
        return records

    def events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[EventRecord]:
        """A run's events after its event number ``after`` (``seq``), in order.

        Numbers are given in commit order, so following them never skips an event.
        """
        return listing.events(self.db, run_id, after=after, limit=limit)

    def status(self, run_id: str) -> str:
        """A run's status alone (one indexed read, for loops that poll); NotFound if no run."""
        with self.db.read() as conn:
            found = conn.execute(select(Run.status).where(Run.id == run_id)).scalar()
        if found is None:
            raise NotFound(f"no run {run_id}")
        return str(found)

    def follow(self, run_id: str, *, after: int = 0, poll: float = 0.2) -> Iterator[EventRecord]:
        """Yield a run's events as they are written, until the run is finished and drained."""
        while True:
            batch = self.events(run_id, after=after)
            yield from batch
            if batch:
                after = batch[-1].seq
                continue
            if self.status(run_id) in states.RUN_FINAL and not self.events(run_id, after=after):
                return
            time.sleep(poll)
