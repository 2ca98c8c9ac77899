"""Every change of a run's or step's state, each inside the caller's transaction.

Lock order, everywhere: the run row first, then its steps. Completion, failure, reaping and
cancellation of one run are thereby serialised (two branches finishing at once both see each
other, so their join step is promoted exactly once), and never deadlock with each other.
Between runs the order is by id, taken at once: a transaction first locks every run it may
change, with the ancestors their ending may reach (a child run that finishes settles its parent's
step, and so on up), in one statement ordered by id (:func:`lock_family`); a cancelled parent
cancels its children afterwards, each in a transaction of its own. Child runs live in
:mod:`awe.engine.child_runs`; re-opening and cancelling in :mod:`awe.engine.reopen`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, case, literal, select, update

from awe.core import metrics, tracing
from awe.core.crypto import instance_key
from awe.engine import child_runs, states, templating
from awe.engine.errors import StepError
from awe.engine.events import add_events, insert_events, notify, state_event
from awe.engine.secret_refs import SecretRefs, nonce_of
from awe.engine.spec import CHILD_KIND
from awe.engine.templating import has_template, render, truthy
from awe.storage.database import settings_of
from awe.storage.engine_models import Run, Step

#: The most items one for_each step may have.
MAX_ITEMS = 10_000
#: Seconds all templates readied in one pass over a run may take together (they render inside
#: the transaction that readies them).
ADVANCE_TEMPLATE_SECONDS = 2.0

# ------------------------------------------------------------------------------------ runs


def lock_run(
    conn: Connection, run_id: str, *, skip_locked: bool = False, nowait: bool = False
) -> Any:
    """The run's row, locked for this transaction on PostgreSQL (SQLite is serialised already);
    with ``skip_locked``, None instead of waiting when another transaction holds it; with
    ``nowait``, a lock error (which callers retry as transient) instead of waiting."""
    statement = select(
        Run.id,
        Run.status,
        Run.inputs,
        Run.spec,
        Run.project_id,
        Run.trace_id,
        Run.parent_step_id,
        Run.trusted,
        Run.depth,
        Run.workflow_name,
        Run.created_at,
    ).where(Run.id == run_id)
    if conn.dialect.name == "postgresql":
        if not lock_family(conn, [run_id], skip_locked=skip_locked, nowait=nowait, own=True):
            return None
        # NO KEY UPDATE: the run's key never changes, and inserting its steps and events
        # (which check their foreign key with KEY SHARE) need not wait for whoever holds it.
        statement = statement.with_for_update(
            skip_locked=skip_locked, nowait=nowait, key_share=True
        )
    return conn.execute(statement).one_or_none()


_LOCKED = "awe_locked_runs"


def lock_family(
    conn: Connection,
    run_ids: list[str],
    *,
    skip_locked: bool = False,
    nowait: bool = False,
    own: bool = False,
) -> bool:
    """Lock these runs and all their ancestors, in id order, in one statement (PostgreSQL;
    SQLite's writers are serialised already). Runs this transaction locked so already are not
    asked for again. With ``skip_locked``, False (and nothing locked) when another transaction
    holds any of them; with ``nowait``, a lock error then. ``own``: the caller locks a single
    run without ancestors itself, in the statement that reads it (:func:`lock_run`)."""
    if conn.dialect.name != "postgresql":
        return True
    held = _held(conn)
    wanted = set(run_ids) - held
    if not wanted:
        return True
    family, frontier = set(wanted), set(wanted)
    while frontier:  # up the parent chain: a child's parent step is a step of its parent run
        parents = conn.execute(
            select(Step.run_id).join(Run, Run.parent_step_id == Step.id).where(Run.id.in_(frontier))
        ).scalars()
        frontier = set(parents) - family - held
        family |= frontier
    if own and family == wanted and len(wanted) == 1:
        return True  # no ancestor: lock_run's own statement locks it (one round trip less)
    statement = (
        select(Run.id)
        .where(Run.id.in_(sorted(family)))
        .order_by(Run.id)
        .with_for_update(skip_locked=skip_locked, nowait=nowait, key_share=True)
    )
    if skip_locked:
        savepoint = conn.begin_nested()
        got = conn.execute(statement).scalars().all()
        if len(got) < len(family):
            savepoint.rollback()  # releases what it did lock: all or nothing
            return False
        savepoint.commit()
    else:
        conn.execute(statement)
    if not conn.in_nested_transaction():  # a savepoint that rolls back would release them
        held |= family
    return True


def _held(conn: Connection) -> set[str]:
    """The runs this transaction has locked with their ancestors."""
    transaction = conn.get_transaction()
    entry = conn.info.get(_LOCKED)
    if entry is None or entry[0] is not transaction:
        entry = (transaction, set())
        conn.info[_LOCKED] = entry
    held: set[str] = entry[1]
    return held


def advance(
    conn: Connection,
    run_id: str,
    *,
    now: datetime,
    locked: Any = None,
    steps: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Move the run forward: ready pending steps whose needs are met, skip blocked ones, finish.

    ``locked`` is the run's row when the caller has already locked it in this transaction;
    ``steps`` its step rows by key when the caller has them (a run created in this transaction:
    no other one can have changed them).
    Templates always see the state after every change made so far in this pass (a step that
    went dead with ``on_failure: continue``, a child run settled at once).
    """
    run = locked if locked is not None else lock_run(conn, run_id)
    if run is None or run.status in states.RUN_FINAL:
        return
    if steps is None:
        rows = conn.execute(
            select(
                Step.id,
                Step.step_key,
                Step.status,
                Step.needs,
                Step.definition,
                Step.on_failure,
                Step.output,
                Step.queue,
            ).where(Step.run_id == run_id)
        ).all()
        steps = {row.step_key: dict(row._mapping) for row in rows}
    events: list[dict[str, Any]] = []
    woken: set[str] = set()
    readied: list[dict[str, Any]] = []  # written at the end of the pass, in one executemany
    with templating.shared_budget(ADVANCE_TEMPLATE_SECONDS), child_runs.one_pass():
        _ready_what_can_run(conn, run, steps, now, events, woken, readied)
    if readied:
        conn.execute(_QUEUE_STEP, readied)
    open_steps = [s for s in steps.values() if s["status"] in states.STEP_OPEN]
    if not open_steps:
        _finish_run(conn, run, steps, now, events)
    add_events(conn, events)
    notify(conn, woken)


def _ready_what_can_run(
    conn: Connection,
    run: Any,
    steps: dict[str, dict[str, Any]],
    now: datetime,
    events: list[dict[str, Any]],
    woken: set[str],
    readied: list[dict[str, Any]],
) -> None:
    run_id = run.id
    context: dict[str, Any] | None = None
    changed = True
    while changed:
        changed = False
        for step in steps.values():
            if step["status"] != states.PENDING:
                continue
            deps = [steps[n] for n in step["needs"]]
            if any(d["status"] in states.STEP_OPEN for d in deps):
                continue
            changed = True
            blocked = next((d for d in deps if _blocks(d)), None)
            if blocked is not None:
                set_status(
                    conn,
                    step,
                    states.SKIPPED,
                    now,
                    events,
                    run_id,
                    reason=f"upstream step {blocked['step_key']} {blocked['status']}",
                )
                context = None
                continue
            if context is None:
                context = template_context(run.inputs, steps)
            _ready(conn, run, step, context, now, events, woken, readied)
            if step["status"] not in states.STEP_OPEN:
                context = None  # it finished at once: what templates read has changed


def _blocks(dep: dict[str, Any]) -> bool:
    """Whether a finished upstream step stops its dependents (they get skipped)."""
    if dep["status"] in (states.SKIPPED, states.CANCELLED):
        return True
    return bool(dep["status"] == states.DEAD and dep["on_failure"] != "continue")


def template_context(inputs: dict[str, Any], steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What templates may read: ``inputs`` and ``steps.<id>.output`` / ``.status``."""
    return {
        "inputs": inputs,
        "steps": {
            key: {"output": s["output"], "status": s["status"]}
            for key, s in steps.items()
            if s["status"] not in states.STEP_OPEN
        },
    }


def _ready(
    conn: Connection,
    run: Any,
    step: dict[str, Any],
    context: dict[str, Any],
    now: datetime,
    events: list[dict[str, Any]],
    woken: set[str],
    readied: list[dict[str, Any]],
) -> None:
    """Ready one pending step whose needs are met: skip it (``when`` false), start its child
    run, or queue it (its row's update added to ``readied``: nothing reads it before the pass
    ends, and one executemany writes them all)."""
    definition = step["definition"]
    key = step["step_key"]
    run_id = run.id
    try:
        when = definition.get("when")
        if when is not None and not truthy(render(when, context, where=f"step {key}: when")):
            set_status(conn, step, states.SKIPPED, now, events, run_id, reason="when is false")
            return
        params, nonce = _params(conn, definition, context, step)
        if definition["kind"] == CHILD_KIND:
            child_runs.start_child(conn, run, step, params, now, events)
            return
    except StepError as exc:
        set_status(
            conn, step, states.DEAD, now, events, run_id, category=exc.category, message=exc.message
        )
        return
    readied.append({"step_id": step["id"], "params": params, "at": now, "nonce": nonce})
    step["status"] = states.QUEUED
    events.append(state_event(run_id, key, states.QUEUED, now))
    woken.add(step["queue"])


# One statement object for every step readied: SQLAlchemy builds and keys it once, not per step
# (that cost more than the UPDATE itself when a thousand runs are created at once).
_STEPS: Table = Step.__table__  # type: ignore[assignment]
_RUNS: Table = Run.__table__  # type: ignore[assignment]
_QUEUE_STEP = (
    update(_STEPS)
    .where(_STEPS.c.id == bindparam("step_id"))
    .values(
        status=states.QUEUED,
        input=bindparam("params", type_=_STEPS.c.input.type),
        run_after=bindparam("at", type_=_STEPS.c.run_after.type),
        ref_nonce=bindparam("nonce", type_=_STEPS.c.ref_nonce.type),
    )
)


def _params(
    conn: Connection, definition: dict[str, Any], context: dict[str, Any], step: dict[str, Any]
) -> tuple[Any, str | None]:
    """The step's resolved ``with:`` (for a ``for_each`` step, one per item, in order), and the
    nonce of its secret references (None when it has none).

    ``secrets.NAME`` renders as this step's reference, never the value (see secret_refs.py).
    """
    key = step["step_key"]
    params = definition.get("with", {})
    if not has_template(params) and "for_each" not in definition:
        return params, None
    settings = settings_of(conn)
    refs = SecretRefs(lambda text: instance_key(settings).tag(text), step["id"])
    scope = {**context, "secrets": refs}
    if "for_each" not in definition:
        return render(params, scope, where=f"step {key}: with"), nonce_of(refs)
    items = render(definition["for_each"], context, where=f"step {key}: for_each")
    if not isinstance(items, list):
        raise StepError(
            f"step {key}: for_each must give a list, not {type(items).__name__}",
            category="validation",
            retryable=False,
        )
    if len(items) > MAX_ITEMS:
        raise StepError(
            f"step {key}: for_each gave {len(items):,} items; a step may have {MAX_ITEMS:,} at"
            " most (split the list, or use a child workflow per part)",
            category="validation",
            retryable=False,
        )
    rendered = [
        render(params, {**scope, "item": item}, where=f"step {key}: with (item {i})")
        for i, item in enumerate(items)
    ]
    return rendered, nonce_of(refs)


def set_status(
    conn: Connection,
    step: dict[str, Any],
    status: str,
    now: datetime,
    events: list[dict[str, Any]],
    run_id: str,
    *,
    reason: str | None = None,
    category: str | None = None,
    message: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> None:
    """Give a step a final status, with its error when it has one, and record the event."""
    values: dict[str, Any] = {"status": status, "finished_at": now}
    if category is not None:
        values.update(error_category=category, error_message=message)
    if errors is not None:
        values["errors"] = errors
    conn.execute(update(Step).where(Step.id == step["id"]).values(**values))
    step["status"] = status
    if status == states.DEAD:
        count_dead(conn, step.get("queue") or "unknown", category or "internal")
    data = {k: v for k, v in (("reason", reason), ("category", category), ("error", message)) if v}
    events.append(state_event(run_id, step["step_key"], status, now, **data))


def count_dead(conn: Connection, queue: str, category: str) -> None:
    """Count a step gone to the dead-letter queue, once its transaction commits."""
    metrics.after_commit(conn, metrics.STEPS_DEAD.labels(queue, category).inc)


def count_finished(
    conn: Connection, run: Any, status: str, now: datetime, error: str | None
) -> None:
    """Count a run that reached a final state, and write its span, once its transaction
    commits (``run``: its row as :func:`lock_run` read it)."""
    seconds = max(0.0, (now - run.created_at).total_seconds())

    def observe() -> None:
        metrics.RUNS_FINISHED.labels(run.workflow_name, status).inc()
        metrics.RUN_DURATION.labels(run.workflow_name, status).observe(seconds)
        tracing.record_run(
            trace_id=run.trace_id,
            run_id=run.id,
            started=run.created_at,
            ended=now,
            attributes={
                "awe.run_id": run.id,
                "awe.workflow": run.workflow_name,
                "awe.status": status,
            },
            error=error if status != states.RUN_SUCCEEDED else None,
        )

    metrics.after_commit(conn, observe)


def attempt_error(attempt: int, category: str, message: str, now: datetime) -> dict[str, Any]:
    """One entry of a step's ``errors`` history (what the DLQ shows for each attempt)."""
    return {
        "attempt": attempt,
        "category": category,
        "message": message[:2000],
        "at": now.isoformat(),
    }


def _finish_run(
    conn: Connection,
    run: Any,
    steps: dict[str, dict[str, Any]],
    now: datetime,
    events: list[dict[str, Any]],
) -> None:
    status, outputs, error = run_outcome(run.spec, run.inputs, steps)
    conn.execute(
        update(Run)
        .where(Run.id == run.id)
        .values(status=status, outputs=outputs, error=error, finished_at=now)
    )
    events.append(state_event(run.id, None, status, now, **({"error": error} if error else {})))
    count_finished(conn, run, status, now, error)
    if run.parent_step_id is not None:
        add_events(conn, events)  # the child's events first, then its parent's
        events.clear()
        child_runs.child_finished(
            conn, run=run, status=status, outputs=outputs, error=error, now=now
        )


def run_outcome(
    spec: dict[str, Any], inputs: dict[str, Any], steps: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, Any], str | None]:
    """How a run whose steps are all closed ends: its status, outputs and error."""
    failed = [
        s for s in steps.values() if s["status"] == states.DEAD and s["on_failure"] != "continue"
    ]
    if failed:
        return states.RUN_FAILED, {}, "step(s) failed: " + ", ".join(s["step_key"] for s in failed)
    try:
        return states.RUN_SUCCEEDED, _outputs(spec, inputs, steps), None
    except StepError as exc:
        return states.RUN_FAILED, {}, exc.message


def _outputs(
    spec: dict[str, Any], inputs: dict[str, Any], steps: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    declared = spec.get("outputs") or {}
    if declared:
        rendered = render(declared, template_context(inputs, steps), where="outputs")
        if not isinstance(rendered, dict):
            raise StepError(
                "outputs must render to a mapping", category="validation", retryable=False
            )
        return rendered
    # Nothing declared: the outputs of the steps nothing else needs.
    needed = {n for s in steps.values() for n in s["needs"]}
    return {
        k: s["output"]
        for k, s in steps.items()
        if k not in needed and s["status"] == states.SUCCEEDED
    }


def start_claimed(
    conn: Connection, claimed: list[tuple[str, str, int]], *, now: datetime, worker: str
) -> None:
    """Record the start of just-claimed steps ((run id, step key, attempt) each): their runs
    turn 'running' if they were queued, and every 'running' event is numbered and written, in
    three statements whatever the count (the runs locked in id order, one update that sets
    their state and numbers their events, one insert)."""
    if not claimed:
        return
    run_ids = sorted({run_id for run_id, _, _ in claimed})
    statement = select(Run.id, Run.status).where(Run.id.in_(run_ids)).order_by(Run.id)
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update(key_share=True)
    queued = [row.id for row in conn.execute(statement) if row.status == states.RUN_QUEUED]
    events = [state_event(run_id, None, states.RUN_RUNNING, now) for run_id in queued]
    events += [
        state_event(run_id, key, states.RUNNING, now, attempt=attempt, worker=worker)
        for run_id, key, attempt in claimed
    ]
    starting = Run.id.in_(queued)
    insert_events(
        conn,
        events,
        locked=True,
        run_values={
            "status": case((starting, states.RUN_RUNNING), else_=Run.status),
            "started_at": case(
                (starting, literal(now, _RUNS.c.started_at.type)), else_=Run.started_at
            ),
        }
        if queued
        else None,
    )


def mark_run_running(conn: Connection, run_ids: set[str], now: datetime) -> None:
    """Runs whose first step was just claimed turn 'running'."""
    if not run_ids:
        return
    queued = select(Run.id).where(Run.id.in_(run_ids), Run.status == states.RUN_QUEUED)
    if conn.dialect.name == "postgresql":
        # Lock order: runs by id (an UPDATE … IN takes them in scan order), as the events that
        # follow in this transaction and every other writer of several runs do.
        queued = queued.order_by(Run.id).with_for_update(key_share=True)
    ids = list(conn.execute(queued).scalars())
    if not ids:
        return
    result = conn.execute(
        update(Run)
        .where(Run.id.in_(ids), Run.status == states.RUN_QUEUED)
        .values(status=states.RUN_RUNNING, started_at=now)
        .returning(Run.id)
    )
    add_events(conn, [state_event(r.id, None, states.RUN_RUNNING, now) for r in result])
