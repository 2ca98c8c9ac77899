"""``awe admin``, ``awe audit`` and ``awe secrets``: admins, the audit trail, the signing secret."""

from __future__ import annotations

import secrets as random
from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, err_console, print_json, state
from awe.services import audit, auth, secrets
from awe.storage import migrate

admin_app = typer.Typer(help="Administrators.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log and security events.", no_args_is_help=True)
secrets_app = typer.Typer(help="The token signing secret.", no_args_is_help=True)


@admin_app.command("create")
def create_admin(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The admin's email address.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    generate: Annotated[
        bool, typer.Option("--generate", help="Generate a password and print it once.")
    ] = False,
) -> None:
    """Create an admin user; the password is prompted for (or generated and printed once)."""
    db = state(ctx).db
    migrate.upgrade(db)
    if generate:
        password = random.token_urlsafe(18)
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    user = auth.create_user(db, email=email, password=password, role="admin", display_name=name)
    console.print(f"admin {user.email} created ({user.id})", highlight=False)
    if generate:
        err_console.print("password (shown this once):", highlight=False)
        console.print(password, highlight=False, markup=False)


@audit_app.command("list")
def list_audit(
    ctx: typer.Context,
    security: Annotated[
        bool, typer.Option("--security", help="Security events instead of the audit log.")
    ] = False,
    action: Annotated[str | None, typer.Option(help="Only this action (or event kind).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The newest audit entries (who did what, from where), or security events."""
    db = state(ctx).db
    if security:
        rows = audit.list_security_events(db, kind=action, limit=limit)
        columns: tuple[str, ...] = ("at", "kind", "email", "ip", "detail")
    else:
        rows = audit.list_audit(db, action=action, limit=limit)
        columns = ("at", "actor_type", "actor_id", "action", "target_type", "target_id", "ip")
    if as_json:
        print_json(rows)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row.get(c) or "") for c in columns))
    console.print(table)


@secrets_app.command("rotate")
def rotate(ctx: typer.Context) -> None:
    """Write a new signing secret: every access and refresh token stops working (all log out)."""
    path = secrets.rotate(state(ctx).settings)
    console.print(f"new signing secret in {path}; every user must log in again", highlight=False)
