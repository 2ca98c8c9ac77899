"""``awe db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from awe.cli.context import console, print_json, state
from awe.core.logging import get_logger
from awe.storage import migrate

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
log = get_logger("db")

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", envvar="DRY_RUN", help="Only list what would run (exit code 10)."),
]
DRY_RUN_EXIT = 10


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
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' removes every table.")],
    dry_run: DryRunOption = False,
) -> None:
    """Revert migrations down to REVISION."""
    cli = state(ctx)
    if dry_run or cli.settings.dry_run:
        log.info("dry run: would downgrade", to=revision, database=cli.db.describe())
        raise typer.Exit(DRY_RUN_EXIT)
    migrate.downgrade(cli.db, revision)
    log.info("database downgraded", database=cli.db.describe(), to=revision)


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
def check(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Exit 1 unless the database is at head and matches the models exactly."""
    db = state(ctx).db
    if as_json:
        result = migrate.status(db)
        diffs = migrate.differences(db) if result.up_to_date else []
        ok = result.up_to_date and not diffs
        print_json({"ok": ok, "up_to_date": result.up_to_date, "differences": diffs})
        raise typer.Exit(0 if ok else 1)
    migrate.check(db)
    console.print("the database matches the models and migrations", highlight=False)
