"""``awe db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.cli.operation import (
    DRY_RUN_EXIT,
    DryRunOption,
    JsonOption,
    YesOption,
    confirm,
    dry_run,
    finish_dry_run,
    line,
    operation,
)
from awe.core.logging import get_logger
from awe.services import database_care
from awe.storage import migrate

app = typer.Typer(help="The database: migrations, statistics, vacuum.", no_args_is_help=True)
log = get_logger("db")


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    dry_run: DryRunOption = False,
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    cli = state(ctx)
    db = cli.db
    if dry_run or cli.settings.dry_run:
        pending = migrate.pending(db, revision)
        log.info(f"dry run: would apply {len(pending)} migration(s)", revisions=pending)
        raise typer.Exit(DRY_RUN_EXIT)
    migrate.upgrade(db, revision)
    log.info("database upgraded", database=db.describe(), at=",".join(migrate.status(db).current))


@app.command("downgrade")
@operation("db downgrade")
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' removes every table.")],
    yes: YesOption = False,
    no_backup: Annotated[
        bool, typer.Option("--no-backup", help="Do not back up the database first.")
    ] = False,
    dry_run_flag: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Revert migrations down to REVISION, after a backup (the tables and columns of the
    reverted migrations are dropped with their data)."""
    cli = state(ctx)
    undo = database_care.reverting(cli.db, revision)
    what = f"{cli.db.describe()}: revert {', '.join(undo) or 'nothing'} (down to {revision})"
    if dry_run(cli, dry_run_flag):
        finish_dry_run("db", f"would {what}")
    if undo:
        confirm(f"Downgrade {what}? What they added is dropped with its data.", yes=yes)
    result = database_care.downgrade(cli.db, cli.settings, revision, take_backup=not no_backup)
    cli.report = result
    if as_json:
        print_json(result)
        return
    if result["backup_before"]:
        line("db", "INFO", f"backed up first: {result['backup_before']}")
    at = ", ".join(result["current"]) or "base (no table)"
    line("db", "INFO", f"reverted {len(result['reverted'])} migration(s); now at {at}")


@app.command("current")
def current(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the database's revision and whether it is at head."""
    db = state(ctx).db
    result = migrate.status(db)
    if as_json:
        print_json(
            {
                "database": db.describe(),
                "current": list(result.current),
                "heads": list(result.heads),
                "up_to_date": result.up_to_date,
            }
        )
        return
    where = ", ".join(result.current) or "(empty: no migration applied)"
    suffix = " (head)" if result.up_to_date else f" (head is {', '.join(result.heads)})"
    console.print(f"{db.describe()}: {where}{suffix}", highlight=False)


@app.command("history")
def history(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the shipped migrations, newest first."""
    revisions = migrate.history()
    if as_json:
        print_json([r.__dict__ for r in revisions])
        return
    for r in revisions:
        console.print(
            f"{r.down_revision or '<base>'} -> {r.revision}  {r.message}", highlight=False
        )


@app.command("revision")
def revision(
    ctx: typer.Context,
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does.")],
) -> None:
    """Autogenerate a migration from the models (for developers of awe)."""
    path = migrate.revision(state(ctx).db, message)
    console.print(f"wrote {path}", highlight=False)


@app.command("check")
@operation("db check")
def check(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Exit 1 unless the database is at head and matches the models exactly."""
    cli = state(ctx)
    db = cli.db
    if as_json:
        result = migrate.status(db)
        diffs = migrate.differences(db) if result.up_to_date else []
        ok = result.up_to_date and not diffs
        cli.report = {"ok": ok, "up_to_date": result.up_to_date, "differences": diffs}
        print_json(cli.report)
        raise typer.Exit(0 if ok else 1)
    migrate.check(db)
    console.print("the database matches the models and migrations", highlight=False)


def _bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


@app.command("stats")
@operation("db stats")
def stats(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Sizes, the largest tables and indexes, dead rows, index use and slow statements."""
    cli = state(ctx)
    found = database_care.stats(cli.db)
    cli.report = found
    if as_json:
        print_json(found)
        return
    line("db", "INFO", f"{cli.db.describe()}: {_bytes(found['size_bytes'])}")
    if "free_bytes" in found:
        line(
            "db",
            "INFO",
            f"{found['free_pages']} free pages ({_bytes(found['free_bytes'])}):"
            " awe db vacuum reclaims them",
        )
    table = Table("table", "rows", "dead rows", "size", title="largest tables")
    for t in found["tables"]:
        size = _bytes(t["size_bytes"]) if "size_bytes" in t else "-"
        table.add_row(t["name"], str(t["rows"]), str(t.get("dead_rows", "-")), size)
    console.print(table)
    for index in found["indexes"].get("largest", []):
        line(
            "db",
            "INFO",
            f"index {index['name']} on {index['table']}: {_bytes(index['size_bytes'])},"
            f" {index['scans']} scans",
        )
    for name in found["indexes"].get("never_scanned", []):
        line(
            "db",
            "WARNING",
            f"index {name} was never used since statistics were reset",
            style="yellow",
        )
    for statement in found.get("slow_statements", []):
        line(
            "db",
            "INFO",
            f"{statement['mean_ms']} ms mean, {statement['calls']} calls: {statement['query']}",
        )
    for what, why in found["unavailable"].items():
        line("db", "INFO", f"{what.replace('_', ' ')}: skipped: {why}", style="dim")


@app.command("vacuum")
@operation("db vacuum")
def vacuum(
    ctx: typer.Context,
    analyze: Annotated[
        bool, typer.Option("--analyze", help="Also refresh planner statistics.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="PostgreSQL: VACUUM FULL (rewrites tables, locks them).")
    ] = False,
    dry_run_flag: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Reclaim the space of deleted rows (VACUUM; on SQLite also PRAGMA optimize and a WAL
    checkpoint); --analyze refreshes the statistics the planner uses."""
    cli = state(ctx)
    if dry_run(cli, dry_run_flag):
        finish_dry_run(
            "db",
            f"would vacuum{' full' if full else ''}{' and analyze' if analyze else ''}"
            f" {cli.db.describe()}",
        )
    done = database_care.vacuum(cli.db, analyze=analyze, full=full)
    cli.report = done
    if as_json:
        print_json(done)
        return
    line(
        "db", "INFO",
        f"{', '.join(done['ran'])} in {done['seconds']} s:"
        f" {_bytes(done['size_before_bytes'])} -> {_bytes(done['size_after_bytes'])}",
    )  # fmt: skip
