"""``awe backup``: create, list, verify, restore and prune backups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.cli.operation import (
    DryRunOption,
    JsonOption,
    YesOption,
    confirm,
    dry_run,
    finish_dry_run,
    line,
    operation,
)
from awe.services import backups

app = typer.Typer(help="Backups: create, list, verify, restore, prune.", no_args_is_help=True)
DestOption = Annotated[
    Path | None, typer.Option("--dest", help="Backup folder (default: AWE_BACKUP_DIR).")
]


def _busy(what: str) -> Progress:
    """A spinner with elapsed time for work that takes seconds (none under --json)."""
    return Progress(
        SpinnerColumn(), TextColumn(what), TimeElapsedColumn(), transient=True, console=console,
        disable=not console.is_terminal,
    )  # fmt: skip


def _size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


@app.command("create")
@operation("backup create")
def create(
    ctx: typer.Context,
    dest: DestOption = None,
    no_secrets: Annotated[
        bool, typer.Option("--no-secrets", help="Leave out the instance key and certificates.")
    ] = False,
    encrypt_to: Annotated[
        Path | None,
        typer.Option("--encrypt-to", help="Seal the secrets to this X25519 or RSA public key."),
    ] = None,
    dry_run_flag: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Back up the database (and, unless --no-secrets, the secrets) into one archive."""
    cli = state(ctx)
    if dry_run(cli, dry_run_flag):
        where = dest or backups.folder(cli.settings)
        finish_dry_run("backup", f"would back up {cli.db.describe()} into {where}")
    with _busy("backing up") as progress:
        progress.add_task("backup")
        made = backups.create(
            cli.db, cli.settings, dest=dest, secrets=not no_secrets, encrypt_to=encrypt_to
        )
    cli.report = made.as_dict()
    if as_json:
        print_json(made.as_dict())
        return
    secrets = made.manifest["secrets"]
    kept = "sealed" if secrets["encrypted"] else ("in clear" if secrets["included"] else "left out")
    line("backup", "INFO", f"wrote {made.path} ({_size(made.path)}; secrets {kept})")
    line("backup", "INFO", f"prove it restores: awe backup verify {made.name} --restore-test")


@app.command("list")
def list_backups(ctx: typer.Context, dest: DestOption = None, as_json: JsonOption = False) -> None:
    """The backups, newest first, with what they hold and when they were last verified."""
    found = backups.listed(state(ctx).settings, dest)
    if as_json:
        print_json([b.as_dict() for b in found])
        return
    if not found:
        console.print("no backup yet: awe backup create", highlight=False)
        return
    table = Table("name", "created", "backend", "revision", "size", "secrets", "verified")
    for b in found:
        s = b.manifest["secrets"]
        secrets = "sealed" if s["encrypted"] else ("yes" if s["included"] else "no")
        verified = (b.verified or {}).get("verified_at", "never")[:19]
        table.add_row(
            b.name, b.manifest["created_at"][:19], b.manifest["backend"], b.manifest["revision"],
            _size(b.path), secrets, verified,
        )  # fmt: skip
    console.print(table)


@app.command("verify")
@operation("backup verify")
def verify(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Backup file, name in the folder, or 'latest'.")],
    restore_test: Annotated[
        bool,
        typer.Option("--restore-test", help="Also restore into a scratch database and check it."),
    ] = False,
    dest: DestOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a backup's files against its manifest; --restore-test proves it restores."""
    cli = state(ctx)
    path = backups.find(cli.settings, name, dest)
    with _busy("verifying") as progress:
        progress.add_task("verify")
        result = backups.verify(cli.db, cli.settings, path, restore_test=restore_test)
    cli.report = result
    if as_json:
        print_json(result)
        return
    line("backup", "INFO", f"{path.name}: every file matches its checksum")
    tested = result["restore_test"]
    if tested:
        line(
            "backup", "INFO",
            f"{path.name}: restored into a scratch database, {tested['tables']} tables and"
            f" {tested['rows']} rows as recorded, schema at head: verified",
        )  # fmt: skip


@app.command("restore")
@operation("backup restore")
def restore(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Backup file, name in the folder, or 'latest'.")],
    yes: YesOption = False,
    force: Annotated[
        bool, typer.Option("--force", help="Restore even while workers are live.")
    ] = False,
    no_backup: Annotated[
        bool, typer.Option("--no-backup", help="Do not back up the current data first.")
    ] = False,
    no_secrets: Annotated[
        bool, typer.Option("--no-secrets", help="Restore the data only, not the secrets.")
    ] = False,
    decrypt_with: Annotated[
        Path | None,
        typer.Option("--decrypt-with", help="Private key the backup's secrets are sealed to."),
    ] = None,
    encrypt_to: Annotated[
        Path | None,
        typer.Option("--encrypt-to", help="Seal the backup taken first to this public key."),
    ] = None,
    dest: DestOption = None,
    dry_run_flag: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Replace the database (and secrets) with a backup's, after backing up what is there."""
    cli = state(ctx)
    path = backups.find(cli.settings, name, dest)
    plan = backups.plan_restore(cli.db, cli.settings, path, force=force)
    taken = plan.manifest["created_at"][:19]
    revision = plan.manifest["revision"]
    what = f"{cli.db.describe()} with {path.name} (taken {taken}, migration {revision})"
    if dry_run(cli, dry_run_flag):
        finish_dry_run("backup", f"would replace {what}")
    confirm(f"Replace {what}?", yes=yes)
    with _busy("restoring") as progress:
        progress.add_task("restore")
        result = backups.restore(
            cli.db, cli.settings, plan, take_backup=not no_backup,
            with_secrets=not no_secrets, private_key=decrypt_with, encrypt_to=encrypt_to,
        )  # fmt: skip
    cli.report = result
    erasures = result["erasures"]
    if as_json:
        print_json(result)
    else:
        _restored(path, result)
    if erasures["failed"] or erasures["unreadable"]:
        raise typer.Exit(1)  # restored, but an erasure it owes is not done: the operator acts


def _restored(path: Path, result: dict[str, Any]) -> None:
    if result["backup_before"]:
        line("backup", "INFO", f"the data it replaced is in {result['backup_before']}")
    line("backup", "INFO", f"restored {path.name} at migration {result['revision']}")
    if result["upgraded_to"]:
        line("backup", "INFO", f"upgraded the restored database to {result['upgraded_to']}")
    for warning in result["warnings"]:
        line("backup", "WARNING", warning, style="yellow")
    erasures = result["erasures"]
    if erasures["reapplied"]:
        line("backup", "INFO", f"re-applied {len(erasures['reapplied'])} erasure(s) made after"
             " the backup was taken")  # fmt: skip
    for problem in erasures["failed"] + erasures["unreadable"]:
        line("backup", "ERROR", f"erasure not re-applied: {problem}", style="red")


@app.command("prune")
@operation("backup prune")
def prune(
    ctx: typer.Context,
    keep_last: Annotated[int, typer.Option("--keep-last", min=1, help="Keep the newest N.")] = 7,
    keep_days: Annotated[
        int | None,
        typer.Option(
            "--keep-days", min=0, help="Keep those younger than D days (AWE_BACKUP_KEEP_DAYS)."
        ),
    ] = None,
    dest: DestOption = None,
    dry_run_flag: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete old backups; the newest verified one is always kept."""
    cli = state(ctx)
    preview = dry_run(cli, dry_run_flag)
    days = cli.settings.backup_keep_days if keep_days is None else keep_days
    deleted, kept = backups.prune(
        cli.settings, keep_last=keep_last, keep_days=days, dry_run=preview, dest=dest
    )
    cli.report = {"deleted": [b.name for b in deleted], "kept": [b.name for b in kept]}
    if as_json:
        print_json({**cli.report, "dry_run": preview})
    else:
        verb = "would delete" if preview else "deleted"
        for b in deleted:
            line("backup", "INFO", f"{verb} {b.name}")
        line("backup", "INFO", f"{len(deleted)} {verb.split()[-1]}, {len(kept)} kept")
    if preview:
        raise typer.Exit(10)
