"""``awe security check``: what makes this installation easy to attack, with the fixes."""

from __future__ import annotations

from typing import Annotated

import typer

from awe.cli.context import state
from awe.cli.operation import JsonOption, operation, show_report
from awe.services import security_audit

app = typer.Typer(help="Security: audit this installation.", no_args_is_help=True)


@app.command("check")
@operation("security check")
def check(
    ctx: typer.Context,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Weak secrets, open registration, clear-text listeners, loose files, privileged kinds for
    members, risky stored workflows, stale tokens, recent security events."""
    cli = state(ctx)
    found = security_audit.check(cli.settings, lambda: cli.db)
    cli.report = found.as_dict()
    show_report("security", found, as_json=as_json)
    raise typer.Exit(found.exit_code(strict=strict))
