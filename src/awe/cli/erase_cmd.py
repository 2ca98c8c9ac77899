"""``awe erase``: erase one data subject everywhere awe keeps them, and prove it (a receipt)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.cli.operation import DryRunOption, JsonOption, YesOption, confirm, dry_run, line, operation
from awe.core.errors import ValidationFailed
from awe.services import erasure
from awe.services.erasure import Receipt


def register(app: typer.Typer) -> None:
    """Add ``awe erase`` to the root app."""
    app.command("erase")(erase)


@operation("erase")
def erase(
    ctx: typer.Context,
    email: Annotated[
        str | None, typer.Option("--email", help="An e-mail address (and its account).")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="A user id (its e-mail is erased too).")
    ] = None,
    value: Annotated[
        str | None, typer.Option("--value", help="Any text naming the person (4+ characters).")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="delete: rows holding them go (runs with their steps and events);"
            " pseudonymize: their values become a keyed hash, rows stay.",
        ),
    ] = "delete",
    expect: Annotated[
        int | None,
        typer.Option(
            "--expect",
            min=0,
            help="The rows the dry run counted: refused if the erasure would change another"
            " number (needed with --value).",
        ),
    ] = None,
    from_ledger: Annotated[
        str | None,
        typer.Option(
            "--from-ledger",
            help="Run an earlier erasure again by its request id (one a restore could not"
            " re-apply): its subject and mode come from the erasure ledger.",
        ),
    ] = None,
    dry_run_flag: DryRunOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Find a person in every table (sealed columns opened), delete or pseudonymize them, then
    verify: a second search, the vector index, the SQLite file. Prints the receipt; exit 1
    when something could not be verified, 10 for a dry run."""
    cli = state(ctx)
    preview = dry_run(cli, dry_run_flag)
    if from_ledger and (email or user or value):
        raise ValidationFailed("--from-ledger takes the subject from the ledger: drop the others")
    if not preview:
        confirm(f"Erase this person ({mode}) from the whole database?", yes=yes)
    status = console.status("erasing: searching every table, then again to verify")
    with nullcontext() if as_json else status:
        if from_ledger:
            receipt = erasure.from_ledger(cli.db, cli.settings, from_ledger, dry_run=preview)
        else:
            receipt = erasure.erase(
                cli.db, cli.settings, email=email, user=user, value=value, mode=mode,
                dry_run=preview, expect=expect,
            )  # fmt: skip
    cli.report = receipt.as_dict()
    if as_json:
        print_json(cli.report)
    else:
        _show(receipt)
    if preview:
        raise typer.Exit(10)
    if not receipt.verified:
        raise typer.Exit(1)


def _show(receipt: Receipt) -> None:
    verb = "would be" if receipt.dry_run else ""
    table = Table("table", "found", f"deleted {verb}".strip(), f"pseudonymized {verb}".strip(),
                  title=f"erasure {receipt.request_id} of subject {receipt.subject}")  # fmt: skip
    for name in sorted(set(receipt.found) | set(receipt.tables)):
        done = receipt.tables.get(name, {})
        table.add_row(name, str(receipt.found.get(name, 0)), str(done.get("deleted", 0)),
                      str(done.get("pseudonymized", 0)))  # fmt: skip
    console.print(table)
    if receipt.account:
        line("erase", "INFO", f"the value names account {receipt.account}: it is erased too")
    for note in receipt.notes:
        line("erase", "WARNING", note, style="yellow")
    for kept in receipt.retained:
        rows = f"{kept['rows']} row(s) " if kept["rows"] else ""
        line("erase", "INFO", f"kept: {kept['what']}: {rows}{kept['as']} ({kept['why']})")
    if receipt.dry_run:
        line("erase", "INFO", f"dry run: nothing was changed; it would change {receipt.rows}"
             f" row(s) (--expect {receipt.rows})")  # fmt: skip
        return
    vectors = receipt.vectors
    line("erase", "INFO", f"vectors ({vectors['backend']}): {vectors['documents']} document(s),"
         f" {vectors['chunks']} chunk(s) erased; absent: {vectors['absent']}")  # fmt: skip
    copies = receipt.backups.get("holding_copies", 0)
    if copies:
        line("erase", "WARNING", f"{copies} backup(s) taken before may hold a copy; the oldest"
             f" ({receipt.backups['oldest']}) expires {receipt.backups['oldest_expires_at']};"
             " a restore re-applies this erasure", style="yellow")  # fmt: skip
    for problem in receipt.problems:
        line("erase", "ERROR", f"not verified: {problem}", style="red")
    if receipt.verified:
        line("erase", "INFO", "verified: a second search finds the subject nowhere",
             style="green")  # fmt: skip
