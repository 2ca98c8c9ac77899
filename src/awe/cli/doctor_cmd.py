"""``awe doctor``: check everything, say how to fix what is wrong, repair what is safe."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from awe.cli.context import console, print_json, state
from awe.cli.operation import JsonOption, operation, show_report
from awe.services import doctor


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the root app."""

    @app.command("doctor")
    @operation("doctor")
    def run_doctor(
        ctx: typer.Context,
        only: Annotated[
            list[str] | None,
            typer.Option("--only", help="Only this group or check (repeat for more)."),
        ] = None,
        skip: Annotated[
            list[str] | None, typer.Option("--skip", help="Leave out this group or check.")
        ] = None,
        list_checks: Annotated[
            bool, typer.Option("--list-checks", help="List the checks and exit.")
        ] = False,
        fix: Annotated[
            bool, typer.Option("--fix", help="Repair what is safe: modes, folders, leases.")
        ] = False,
        strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Check the configuration, secrets, files, database, engine, AI, TLS and backups.

        Exit 0 when nothing failed (1 when a check failed; with --strict, also on warnings).
        """
        if list_checks:
            _list(as_json)
            return
        cli = state(ctx)
        chosen = doctor.chosen(only or [], skip or [])
        if as_json or not console.is_terminal:
            found = doctor.check(cli.settings, lambda: cli.db, chosen, fix=fix)
        else:
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), transient=True, console=console
            ) as progress:
                task = progress.add_task("checking", total=len(chosen))

                def show(probe: doctor.Probe) -> None:
                    progress.update(task, description=f"{probe.id}: {probe.title}", advance=1)

                found = doctor.check(cli.settings, lambda: cli.db, chosen, fix=fix, progress=show)
        cli.report = found.as_dict()
        show_report("doctor", found, as_json=as_json)
        raise typer.Exit(found.exit_code(strict=strict))


def _list(as_json: bool) -> None:
    probes = doctor.chosen([], [])
    if as_json:
        print_json([{"id": p.id, "group": p.group, "title": p.title, "fixable": bool(p.repair)}
                    for p in probes])  # fmt: skip
        return
    for p in probes:
        mark = " (--fix repairs)" if p.repair else ""
        console.print(f"{p.group:<14} {p.id:<26} {p.title}{mark}", highlight=False)
