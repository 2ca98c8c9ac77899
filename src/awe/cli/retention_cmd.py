"""``awe retention run``: delete finished runs, old audit entries, security events and script
records by the retention settings (the leading scheduler does the same every interval)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from awe.cli.context import console, print_json, state
from awe.cli.operation import (
    DryRunOption,
    JsonOption,
    YesOption,
    confirm,
    dry_run,
    duration,
    line,
    operation,
)
from awe.services import retention

app = typer.Typer(help="Retention: delete what is older than its settings.", no_args_is_help=True)


@app.command("run")
@operation("retention run")
def run(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="One age for every table (30d, 12h), instead of each one's setting;"
            " a table set to 0 (keep forever) is still kept.",
        ),
    ] = None,
    dry_run_flag: DryRunOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Count what is old per table (a dry run stops there, exit 10), then delete it in short
    batches: runs with their steps and events, audit log, security events, script records."""
    cli = state(ctx)
    age = duration(older_than, "--older-than") if older_than is not None else None
    preview = dry_run(cli, dry_run_flag)
    cuts = retention.cutoffs(cli.settings, age)
    if age is not None and age < timedelta(days=1) and not preview:
        # The audit log and security events are evidence (a lockout in progress among them).
        confirm(
            f"Delete everything older than {older_than}, audit log and security events included?",
            yes=yes,
        )
    found = retention.plan(cli.db, cli.settings, older_than=age)
    if preview:
        counts = found
    else:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=console, transient=True, disable=as_json or not console.is_terminal,
        ) as bar:  # fmt: skip
            tasks = {
                table: bar.add_task(f"retention {table}", total=n)
                for table, n in found.rows.items()
                if n
            }

            def advance(table: str, n: int) -> None:
                if table in tasks:
                    bar.advance(tasks[table], n)

            counts = retention.run(cli.db, cli.settings, older_than=age, progress=advance)
    kept = [t for t in ("runs", "audit_log", "security_events", "script_executions")
            if getattr(cuts, t) is None]  # fmt: skip
    cli.report = {"dry_run": preview, "rows": counts.rows, "kept_forever": kept}
    if as_json:
        print_json({**cli.report, "cutoffs": {
            t: (c.isoformat() if c else None) for t, c in vars(cuts).items()}})  # fmt: skip
    else:
        verb = "would delete" if preview else "deleted"
        for table, n in counts.rows.items():
            line("retention", "INFO", f"{table}: {verb} {n}")
        for table in kept:
            line("retention", "INFO", f"{table}: kept forever (its retention setting is 0)")
    if preview:
        raise typer.Exit(10)
