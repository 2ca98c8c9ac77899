"""``awe pii scan``: what the scrubber would replace in a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from awe.ai.knowledge.extract import decode
from awe.ai.pii import TYPES, scan
from awe.cli.context import console, print_json, state
from awe.core.errors import ValidationFailed
from awe.services import subject_search

app = typer.Typer(help="Personal and secret data.", no_args_is_help=True)


@app.command("scan")
def scan_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A text file ('-' for standard input).")],
    as_json: Annotated[
        bool, typer.Option("--json", help='A list of {"type", "start", "end", "text"}.')
    ] = False,
    types: Annotated[
        str | None, typer.Option("--types", help=f"Comma-separated, of: {', '.join(TYPES)}.")
    ] = None,
    fail_on_findings: Annotated[
        bool, typer.Option("--fail-on-findings", help="Exit 1 when anything is found (for gating).")
    ] = False,
) -> None:
    """List the personal and secret data in FILE (character offsets); exit 0 if the scan worked."""
    if str(file) == "-":
        import sys

        text = sys.stdin.read()
    elif not file.is_file():
        raise ValidationFailed(f"{file}: no such file")
    else:
        text = decode(file.read_bytes())
    regions = tuple(state(ctx).settings.pii_phone_regions.split(","))
    chosen = [t.strip() for t in types.split(",")] if types else None
    findings = scan(text, types=chosen, phone_regions=regions)
    if as_json:
        print_json([f.as_dict() for f in findings])
    else:
        table = Table("type", "start", "end", "text", title=f"{len(findings)} finding(s) in {file}")
        for f in findings:
            table.add_row(f.type, str(f.start), str(f.end), f.text)
        console.print(table)
    if fail_on_findings and findings:
        raise typer.Exit(1)


@app.command("find")
def find(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option("--email", help="An e-mail address.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="A user id (its e-mail is looked for too).")
    ] = None,
    value: Annotated[str | None, typer.Option("--value", help="Any text (4+ characters).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report.")] = False,
) -> None:
    """Where a person appears in the database: every table and column holding them, sealed
    columns opened (right of access; the audit log records a keyed hash, not the value)."""
    cli = state(ctx)
    found, tag = subject_search.locate(cli.db, cli.settings, email=email, user=user, value=value)
    if as_json:
        print_json({"subject": tag, "rows": found.total, "tables": found.as_dict()})
        return
    table = Table("table", "rows", "columns", title=f"{found.total} row(s) hold the subject")
    for name, entry in found.as_dict().items():
        table.add_row(name, str(entry["rows"]), ", ".join(entry["columns"]))
    console.print(table)
