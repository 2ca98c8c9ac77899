"""``awe schedules``: list, pause, resume and fire the cron schedules of stored workflows."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from awe.cli.context import console, print_json, state
from awe.services import schedules
from awe.services.tokens import operator_actor

app = typer.Typer(
    help="Cron schedules (a stored workflow with schedule: gets one).", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="Schedule name (awe schedules list).")]


@app.command("list")
def list_(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Schedules with their cron, next fire time and state."""
    found = schedules.list_schedules(state(ctx).db)
    if as_json:
        print_json([s.as_dict() for s in found])
        return
    table = Table("name", "workflow", "cron", "timezone", "enabled", "next fire", "last fire")
    for s in found:
        version = f"@{s.workflow_version}" if s.workflow_version else ""
        table.add_row(
            s.name,
            s.workflow + version,
            s.cron,
            s.timezone,
            "yes" if s.enabled else Text("paused", style="yellow"),
            s.next_fire_at.isoformat(timespec="seconds"),
            s.last_fire_at.isoformat(timespec="seconds") if s.last_fire_at else "",
        )
    console.print(table)


@app.command("disable")
def disable(ctx: typer.Context, name: NameArgument) -> None:
    """Pause a schedule: it fires no more until enabled."""
    schedules.set_enabled(state(ctx).db, name, enabled=False, actor=operator_actor())
    console.print(f"{name}: paused", highlight=False)


@app.command("enable")
def enable(ctx: typer.Context, name: NameArgument) -> None:
    """Resume a schedule; it fires next at its next cron time."""
    schedules.set_enabled(state(ctx).db, name, enabled=True, actor=operator_actor())
    console.print(f"{name}: enabled", highlight=False)


@app.command("trigger")
def trigger(ctx: typer.Context, name: NameArgument) -> None:
    """Fire a schedule now, outside its cron; prints the run id."""
    console.print(schedules.trigger(state(ctx).db, name, actor=operator_actor()), highlight=False)
