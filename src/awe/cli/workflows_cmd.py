"""``awe workflows``: push, list, show and diff stored workflow versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.services import workflows
from awe.storage import migrate

app = typer.Typer(help="Stored workflows: immutable versions.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ProjectOption = Annotated[str | None, typer.Option("--project", help="Project name.")]


@app.command("push")
def push(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store FILE as its workflow's next version (nothing new if it did not change)."""
    db = state(ctx).db
    migrate.upgrade(db)
    stored, created = workflows.push(db, file, project=project)
    if as_json:
        print_json({**stored.summary(), "created": created})
    else:
        what = "stored as" if created else "unchanged; still"
        console.print(f"{stored.name}: {what} version {stored.version}", highlight=False)


@app.command("list")
def list_(ctx: typer.Context, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Stored workflows with their latest version."""
    found = workflows.latest_versions(state(ctx).db, project=project)
    if as_json:
        print_json([w.summary() for w in found])
        return
    table = Table("name", "version", "steps", "description")
    for w in found:
        summary = w.summary()
        table.add_row(w.name, str(w.version), str(summary["steps"]), summary["description"])
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Version (default: latest).")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a stored version's YAML source."""
    stored = workflows.get(state(ctx).db, name, version=version, project=project)
    if as_json:
        print_json({**stored.summary(), "source": stored.source, "spec": stored.spec})
    else:
        console.print(stored.source, highlight=False, markup=False, end="")


@app.command("diff")
def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    old: Annotated[int, typer.Argument(help="Older version.")],
    new: Annotated[int, typer.Argument(help="Newer version.")],
    project: ProjectOption = None,
) -> None:
    """A unified diff of two versions."""
    text = workflows.diff(state(ctx).db, name, old, new, project=project)
    console.print(
        text or "(no difference)", highlight=False, markup=False, end="" if text else "\n"
    )
