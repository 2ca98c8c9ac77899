"""``awe run FILE``: run a workflow file and watch it, in-process when no worker is running."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from awe.cli.context import console, err_console, print_json, state
from awe.core.config import Settings
from awe.core.errors import ValidationFailed
from awe.engine import states
from awe.engine.client import Engine
from awe.engine.files import load_file
from awe.engine.records import RunRecord
from awe.engine.registry import default_registry
from awe.engine.worker import Worker, WorkerOptions
from awe.services import workflows
from awe.storage import migrate

STYLE = {
    "succeeded": "green",
    "running": "cyan",
    "queued": "yellow",
    "dead": "red",
    "cancelled": "magenta",
    "skipped": "dim",
    "pending": "dim",
}


def _parse_inputs(pairs: list[str], input_file: Path | None) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if input_file is not None:
        from ruamel.yaml import YAML

        loaded = YAML(typ="safe").load(input_file.read_text(encoding="utf-8-sig"))
        if not isinstance(loaded, dict):
            raise ValidationFailed(f"{input_file}: expected a mapping of input name to value")
        given.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValidationFailed(f"--input {pair!r}: expected NAME=VALUE")
        given[name.strip()] = value
    return given


def _levels(run: RunRecord) -> dict[str, int]:
    needs = {s.step_key: s.needs for s in run.steps}
    levels: dict[str, int] = {}

    def level(key: str) -> int:
        if key not in levels:
            levels[key] = 1 + max((level(n) for n in needs[key]), default=-1)
        return levels[key]

    for key in needs:
        level(key)
    return levels


def _view(run: RunRecord, progress: dict[str, str]) -> Table:
    """The run's steps, grouped by DAG level, with state, attempt, duration and progress."""
    table = Table(title=f"{run.workflow_name}  {run.id}  [bold]{run.status}[/]")
    for column in ("level", "step", "kind", "state", "attempt", "duration", "progress", "error"):
        table.add_column(column)
    levels = _levels(run)
    for step in sorted(run.steps, key=lambda s: (levels[s.step_key], s.step_key)):
        duration = ""
        if step.started_at is not None:
            end = step.finished_at or step.started_at
            duration = f"{(end - step.started_at).total_seconds():.2f}s"
        style = STYLE.get(step.status, "")
        table.add_row(
            str(levels[step.step_key]),
            step.step_key,
            step.kind,
            f"[{style}]{step.status}[/]",
            f"{step.attempt}/{step.max_attempts}",
            duration,
            progress.get(step.step_key, "") if step.status == states.RUNNING else "",
            (step.error_message or "")[:60],
        )
    return table


def register(app: typer.Typer) -> None:
    """Add ``run`` to the root app."""

    @app.command("run")
    def run(
        ctx: typer.Context,
        target: Annotated[
            str,
            typer.Argument(metavar="FILE|NAME", help="Workflow file, or a stored workflow's name."),
        ],
        version: Annotated[
            int | None, typer.Option("--version", help="Stored version (default: latest).")
        ] = None,
        input_: Annotated[
            list[str] | None, typer.Option("--input", "-i", help="NAME=VALUE (repeatable).")
        ] = None,
        input_file: Annotated[
            Path | None, typer.Option("--input-file", help="Inputs as JSON or YAML.")
        ] = None,
        verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Stream step logs.")] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the final run as JSON.")
        ] = False,
        detach: Annotated[
            bool, typer.Option("--detach", help="Only submit; print the run id.")
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option("--dry-run", help="Preview: scripts get DRY_RUN=true, nothing is sent."),
        ] = False,
    ) -> None:
        """Run a workflow file or stored workflow; exit 0 if the run succeeded, 1 if not."""
        cli = state(ctx)
        migrate.upgrade(cli.db)
        pinned: int | None = None
        if Path(target).is_file() and version is None:
            spec = load_file(Path(target), known_kind=default_registry.knows)
        elif Path(target).suffix in (".yaml", ".yml") and not Path(target).exists():
            raise ValidationFailed(f"{target}: no such workflow file")
        else:
            stored = workflows.get(cli.db, target, version=version)
            spec, pinned = stored.spec, stored.version
        inputs = _parse_inputs(input_ or [], input_file)  # checked and typed by submit
        engine = Engine(cli.db)
        run_id = engine.submit(
            spec, inputs, workflow_version=pinned, dry_run=dry_run or cli.settings.dry_run
        )
        if detach:
            console.print(run_id, highlight=False)
            return
        local = _local_worker(engine, spec, cli.settings)
        try:
            record = _watch(engine, run_id, verbose=verbose)
        finally:
            if local is not None:
                local[0].stop()
                local[1].join(timeout=60)
        if as_json:
            data = record.as_dict()
            print_json(
                {
                    "id": data["id"],
                    "status": data["status"],
                    "outputs": data["outputs"],
                    "steps": data["steps"],
                }
            )
        elif record.outputs:
            console.print_json(json.dumps(record.outputs, default=str))
        if record.status != states.RUN_SUCCEEDED:
            raise typer.Exit(1)


def _local_worker(
    engine: Engine, spec: dict[str, Any], settings: Settings
) -> tuple[Worker, threading.Thread] | None:
    """A worker in this process when no live worker serves the workflow's queues."""
    queues = {spec["queue"], *(s.get("queue") or spec["queue"] for s in spec["steps"])}
    live = [w for w in engine.list_workers(stale_after=30) if w.status == "running"]
    if any(queues <= set(w.queues) for w in live):
        return None
    worker = Worker(
        engine.db,
        WorkerOptions(queues=sorted(queues), dry_run=settings.dry_run),
        settings=settings,
    )
    thread = threading.Thread(target=worker.run, name="awe-run-worker", daemon=True)
    thread.start()
    return worker, thread


def _progress_text(data: dict[str, Any] | None, message: str) -> str:
    fraction = float((data or {}).get("fraction", 0))
    bar = "█" * round(fraction * 10) + "░" * (10 - round(fraction * 10))
    return f"{bar} {message or f'{fraction:.0%}'}"


def _watch(engine: Engine, run_id: str, *, verbose: bool) -> RunRecord:
    after = 0
    progress: dict[str, str] = {}
    view = _view(engine.get_run(run_id), progress)
    with Live(view, console=err_console, refresh_per_second=8, transient=False) as live:
        while True:
            # The run first, then its events: the events of a final state are then all read.
            record = engine.get_run(run_id)
            for event in engine.events(run_id, after=after):
                after = event.id
                if event.type == "progress" and event.step_key:
                    progress[event.step_key] = _progress_text(event.data, event.message)
                elif event.type == "log" and verbose:
                    live.console.print(
                        f"[{event.step_key}] {event.message}", highlight=False, markup=False
                    )
            live.update(_view(record, progress))
            if record.status in states.RUN_FINAL and not any(
                s.status == states.RUNNING for s in record.steps
            ):
                return record
            time.sleep(0.1)
