"""``awe errors``: error patterns, a live error monitor, and an LLM's diagnosis of a failure."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.cli.operation import JsonOption, duration, line, operation
from awe.services import error_patterns

app = typer.Typer(help="Errors: patterns, a live monitor, diagnoses.", no_args_is_help=True)


@app.command("top")
@operation("errors top")
def top(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="Window: 30m, 24h, 7d…")] = "24h",
    by: Annotated[str, typer.Option("--by", help="category, workflow or step.")] = "category",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The most frequent failures of a window, from the attempts the database recorded."""
    cli = state(ctx)
    found = error_patterns.top(cli.db, since=duration(since, "--since"), by=by, limit=limit)  # type: ignore[arg-type]
    rows = found["rows"]
    cli.report = {"since": since, "by": by, **found}
    if as_json:
        print_json(found)
        return
    if found["truncated"]:
        line(
            "errors", "WARNING",
            f"more than {found['scan_limit']} failures in the window: counts are of the newest",
            style="yellow",
        )  # fmt: skip
    if not rows:
        console.print(f"no failed attempt in the last {since}", highlight=False)
        return
    table = Table(by, "failures", "dead", "last", "example")
    for r in rows:
        table.add_row(r["key"], str(r["count"]), str(r["dead"]), r["last_at"][:19], r["example"])
    console.print(table)


@app.command("follow")
def follow(
    ctx: typer.Context,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between reads.")
    ] = 1.0,
    seconds: Annotated[
        float | None, typer.Option("--for", min=0.1, help="Stop after this many seconds.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print failures as they are recorded (Ctrl-C stops); one JSON object a line with --json."""
    follower = error_patterns.Follower(state(ctx).db)
    deadline = None if seconds is None else time.monotonic() + seconds
    if not as_json:
        line("errors", "INFO", "following failures (Ctrl-C stops)")
    try:
        while deadline is None or time.monotonic() < deadline:
            for event in follower.poll():
                if as_json:
                    print_json(event.as_dict())
                    continue
                level = "ERROR" if event.status == "dead" else "WARNING"
                first = event.message.splitlines()[0][:300] if event.message else ""
                line(
                    "errors", level,
                    f"{event.workflow}/{event.step} {event.status} [{event.category}] run"
                    f" {event.run_id}: {first}",
                    style="red" if level == "ERROR" else "yellow",
                )  # fmt: skip
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@app.command("explain")
@operation("errors explain")
def explain(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A failed step's id, or a run id.")],
    provider: Annotated[
        str | None, typer.Option("--provider", help="LLM provider (default: AWE_LLM_PROVIDER).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask the LLM what went wrong: the error, the step's definition and its last log lines
    are sent with PII scrubbed; the answer is the model's guess, labelled as such."""
    cli = state(ctx)
    found = error_patterns.explain(cli.db, cli.settings, ref, provider=provider)
    cli.report = {k: v for k, v in found.items() if k != "sent"}
    if as_json:
        print_json(found)
        return
    line("errors", "INFO", f"step {found['step']} of run {found['run_id']}: [{found['category']}]")
    console.print(
        f"Diagnosis by {found['provider']} model {found['model']} (an AI's guess: check it):",
        style="bold", highlight=False,
    )  # fmt: skip
    console.print(found["diagnosis"] or "(the model gave no answer)", highlight=False)
