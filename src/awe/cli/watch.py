"""Watching a run to its end: a Rich live view of its DAG, and an in-process worker if needed.

Shared by every command that starts a run and waits for it (``awe run``, ``awe knowledge``…).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.live import Live
from rich.table import Table
from rich.text import Text

from awe.cli.context import err_console
from awe.core.config import Settings
from awe.engine import states
from awe.engine.client import Engine
from awe.engine.records import RunRecord
from awe.engine.worker import Worker, WorkerOptions

STYLE = {
    "succeeded": "green",
    "running": "cyan",
    "queued": "yellow",
    "dead": "red",
    "cancelled": "magenta",
    "skipped": "dim",
    "pending": "dim",
}


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


def run_view(run: RunRecord, progress: dict[str, str]) -> Table:
    """The run's steps, grouped by DAG level, with state, attempt, duration and progress."""
    table = Table(title=Text.assemble(f"{run.workflow_name}  {run.id}  ", (run.status, "bold")))
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
            Text(step.status, style=style),
            f"{step.attempt}/{step.max_attempts}",
            duration,
            progress.get(step.step_key, "") if step.status == states.RUNNING else "",
            (step.error_message or "")[:60],
        )
    return table


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
    view = run_view(engine.get_run(run_id), progress)
    with Live(view, console=err_console, refresh_per_second=8, transient=False) as live:
        while True:
            # The run first, then its events: the events of a final state are then all read.
            record = engine.get_run(run_id)
            for event in engine.events(run_id, after=after):
                after = event.seq
                if event.type == "progress" and event.step_key:
                    progress[event.step_key] = _progress_text(event.data, event.message)
                elif event.type == "log" and verbose:
                    live.console.print(
                        f"[{event.step_key}] {event.message}", highlight=False, markup=False
                    )
            live.update(run_view(record, progress))
            if record.status in states.RUN_FINAL and not any(
                s.status == states.RUNNING for s in record.steps
            ):
                return record
            time.sleep(0.1)


def watch_run(
    engine: Engine, run_id: str, spec: dict[str, Any], settings: Settings, *, verbose: bool = False
) -> RunRecord:
    """Show the run live until it ends (running it here when no worker serves its queues)."""
    local = _local_worker(engine, spec, settings)
    try:
        return _watch(engine, run_id, verbose=verbose)
    finally:
        if local is not None:
            local[0].stop()
            local[1].join(timeout=60)
