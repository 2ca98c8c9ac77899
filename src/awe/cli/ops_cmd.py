"""``awe ops history``: what operational commands ran, when, by whom, and how they ended;
``awe ops install-runbooks``: store the runbooks shipped with awe."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.cli.operation import DryRunOption, JsonOption, dry_run, finish_dry_run, line, operation
from awe.services import operations, runbooks
from awe.services.tokens import operator_actor

app = typer.Typer(help="Operations: the record of operational commands.", no_args_is_help=True)


@app.command("history")
def history(
    ctx: typer.Context,
    command: Annotated[
        str | None, typer.Option("--command", help="Only this command, e.g. 'backup create'.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=operations.HISTORY_LIMIT)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List recorded runs of operational commands, newest first."""
    found = operations.history(state(ctx).db, command=command, limit=limit)
    if as_json:
        print_json([e.as_dict() for e in found])
        return
    if not found:
        console.print("no operational command has run yet", highlight=False)
        return
    table = Table("started", "command", "exit", "took", "actor", "arguments")
    for e in found:
        table.add_row(
            f"{e.started_at:%Y-%m-%d %H:%M:%S}",
            e.command,
            str(e.exit_code),
            f"{e.duration_seconds:.1f} s",
            e.actor,
            " ".join(e.arguments),
        )
    console.print(table)


@app.command("install-runbooks")
@operation("ops install-runbooks")
def install_runbooks(
    ctx: typer.Context, dry_run_flag: DryRunOption = False, as_json: JsonOption = False
) -> None:
    """Store the shipped runbooks (awe-verify, awe-nightly, the daily and weekly checklists)
    as workflows; a new version only where one changed. New schedules start disabled."""
    cli = state(ctx)
    if dry_run(cli, dry_run_flag):
        finish_dry_run("ops", f"would install {', '.join(runbooks.shipped())}")
    installed = runbooks.install(cli.db, actor=operator_actor())
    cli.report = {"runbooks": [r.as_dict() for r in installed]}
    if as_json:
        print_json(cli.report)
        return
    for r in installed:
        what = f"stored v{r.version}" if r.created else f"v{r.version} is up to date"
        when = ""
        if r.schedule is not None:
            when = (
                "; schedule on"
                if r.schedule_enabled
                else (f"; schedule off (awe schedules enable {r.schedule})")
            )
        line("ops", "INFO", f"{r.name}: {what}{when}")
