"""``awe runs`` and ``awe dlq``: look at runs, steer them, and work the dead-letter queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from awe.cli.context import console, print_json, state
from awe.cli.operation import duration
from awe.core.errors import ValidationFailed
from awe.engine.client import Engine
from awe.engine.listing import DeadLetterFilter
from awe.engine.records import EventRecord, RunRecord
from awe.services import runs
from awe.services.tokens import OPERATOR, operator_actor

runs_app = typer.Typer(help="Runs: list, show, cancel, resume, fork, events.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="The dead-letter queue: dead steps, and requeueing them.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RunArg = Annotated[str, typer.Argument(help="Run id.")]


def _engine(ctx: typer.Context) -> Engine:
    return Engine(state(ctx).db)


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else "-"


def _print_run(run: RunRecord, children: dict[str, RunRecord]) -> None:
    console.print(
        Text.assemble((run.id, "bold"), f"  {run.workflow_name}  ", (run.status, "bold")),
        highlight=False,
    )
    if run.error:
        console.print(f"error: {run.error}", highlight=False)
    table = Table("step", "kind", "status", "attempt", "error")
    for s in run.steps:
        error = f"{s.error_category}: {s.error_message}" if s.error_category else ""
        if s.step_key in children:
            child = children[s.step_key]
            error = f"child run {child.id} ({child.status}) " + error
        table.add_row(s.step_key, s.kind, s.status, f"{s.tries}/{s.max_attempts}", error[:120])
    console.print(table)
    if run.outputs:
        console.print("outputs:", run.as_dict()["outputs"])


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only runs on this queue.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Runs, newest first."""
    found = _engine(ctx).list_runs(status=status, workflow=workflow, queue=queue, limit=limit)
    if as_json:
        print_json([r.as_dict() for r in found])
        return
    table = Table("id", "workflow", "status", "created", "finished")
    for r in found:
        table.add_row(r.id, r.workflow_name, r.status, _when(r.created_at), _when(r.finished_at))
    console.print(table)


@runs_app.command("show")
def show(ctx: typer.Context, run_id: RunArg, as_json: JsonOption = False) -> None:
    """One run with its steps."""
    engine = _engine(ctx)
    run = engine.get_run(run_id)
    children = engine.child_runs(run_id)
    if as_json:
        data = run.as_dict()
        data["children"] = {key: {"id": c.id, "status": c.status} for key, c in children.items()}
        print_json(data)
    else:
        _print_run(run, children)


@runs_app.command("cancel")
def cancel(ctx: typer.Context, run_id: RunArg, as_json: JsonOption = False) -> None:
    """Cancel a run: waiting steps at once, running steps (and their processes) right after."""
    run = runs.cancel(state(ctx).db, OPERATOR, run_id, actor=operator_actor())
    if as_json:
        print_json(run.as_dict())
    else:
        console.print(f"run {run_id} cancelled", highlight=False)


@runs_app.command("resume")
def resume(ctx: typer.Context, run_id: RunArg, as_json: JsonOption = False) -> None:
    """Re-queue a run's dead and cancelled steps; finished steps are not run again."""
    steps = runs.resume(state(ctx).db, OPERATOR, run_id, actor=operator_actor())
    if as_json:
        print_json({"run_id": run_id, "requeued": steps})
    else:
        console.print(f"run {run_id}: {len(steps)} step(s) re-queued", highlight=False)


@runs_app.command("fork")
def fork(
    ctx: typer.Context,
    run_id: RunArg,
    from_step: Annotated[
        str, typer.Option("--from", help="Step to run again (with what depends on it).")
    ],
    as_json: JsonOption = False,
) -> None:
    """A new run that reuses every output not downstream of --from."""
    new_id = runs.fork(state(ctx).db, OPERATOR, run_id, from_step, actor=operator_actor())
    if as_json:
        print_json({"run_id": new_id, "forked_from": run_id, "from_step": from_step})
    else:
        console.print(new_id, highlight=False)


def _print_event(event: EventRecord, as_json: bool) -> None:
    if as_json:
        print_json(event.as_dict())
        return
    where = f"[{event.step_key}] " if event.step_key else ""
    console.print(
        f"{_when(event.created_at)} {event.level:<7} {where}{event.message}",
        highlight=False,
    )


@runs_app.command("events")
def events(
    ctx: typer.Context,
    run_id: RunArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    after: Annotated[int, typer.Option(help="Only events after this event number (seq).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """A run's events: state changes, logs, progress."""
    engine = _engine(ctx)
    engine.get_run(run_id)  # NotFound before anything else
    stream = (
        engine.follow(run_id, after=after) if follow else iter(engine.events(run_id, after=after))
    )
    for event in stream:
        _print_event(event, as_json)


def _age(value: str | None) -> timedelta | None:
    return None if value is None else duration(value, "--older-than")


def _filter(
    queue: str | None, category: str | None, workflow: str | None, older_than: str | None
) -> DeadLetterFilter:
    return DeadLetterFilter(
        queue=queue, category=category, workflow=workflow, older_than=_age(older_than)
    )


QueueOpt = Annotated[str | None, typer.Option(help="Only this queue.")]
CategoryOpt = Annotated[
    str | None, typer.Option(help="Only this error category, e.g. exit_code:3.")
]
WorkflowOpt = Annotated[str | None, typer.Option(help="Only this workflow.")]
AgeOpt = Annotated[
    str | None, typer.Option("--older-than", help="Only steps dead for longer, e.g. 30m, 2h.")
]


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    queue: QueueOpt = None,
    category: CategoryOpt = None,
    workflow: WorkflowOpt = None,
    older_than: AgeOpt = None,
    as_json: JsonOption = False,
) -> None:
    """Dead steps with their category, last error and attempts."""
    dead = _engine(ctx).dead_letters(_filter(queue, category, workflow, older_than))
    if as_json:
        print_json([d.as_dict() for d in dead])
        return
    table = Table("step id", "run", "step", "queue", "category", "attempts", "error")
    for d in dead:
        table.add_row(
            d.id,
            d.run_id,
            d.step_key,
            d.queue,
            d.error_category or "",
            str(d.attempt),
            (d.error_message or "")[:60],
        )
    console.print(table)


@dlq_app.command("requeue")
def dlq_requeue(
    ctx: typer.Context,
    step_ids: Annotated[list[str] | None, typer.Argument(help="Step ids (or use filters).")] = None,
    queue: QueueOpt = None,
    category: CategoryOpt = None,
    workflow: WorkflowOpt = None,
    older_than: AgeOpt = None,
    as_json: JsonOption = False,
) -> None:
    """Put dead steps back in the queue with fresh attempts, by id or by filter."""
    has_filter = any(v is not None for v in (queue, category, workflow, older_than))
    if not step_ids and not has_filter:
        raise ValidationFailed(
            "give step ids, or a filter (--queue, --category, --workflow, --older-than)"
        )
    age = _age(older_than)
    requeued = runs.requeue(
        state(ctx).db,
        OPERATOR,
        step_ids=step_ids or None,
        queue=queue,
        category=category,
        workflow=workflow,
        older_than_seconds=age.total_seconds() if age is not None else None,
        actor=operator_actor(),
    )
    if as_json:
        print_json({"requeued": requeued})
    else:
        console.print(f"{len(requeued)} step(s) requeued", highlight=False)
