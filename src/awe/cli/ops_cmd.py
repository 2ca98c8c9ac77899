"""``awe ops history``: what operational commands ran, when, by whom, and how they ended."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.cli.operation import JsonOption
from awe.services import operations

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
