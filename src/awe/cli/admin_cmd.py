"""``awe admin``, ``awe audit`` and ``awe secrets``: admins, the audit trail, secrets."""

from __future__ import annotations

import secrets as random
import sys
from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, err_console, print_json, state
from awe.core.errors import ValidationFailed
from awe.services import audit, auth, projects, secrets, signing
from awe.services.projects import ProjectInfo
from awe.services.tokens import OPERATOR, operator_actor
from awe.storage import migrate
from awe.storage.database import Database

admin_app = typer.Typer(help="Administrators.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log and security events.", no_args_is_help=True)
secrets_app = typer.Typer(
    help="Project secrets for steps ({{ secrets.NAME }}), and the token signing secret.",
    no_args_is_help=True,
)
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project", help="Project name (default: the default project, where awe run FILE runs)."
    ),
]


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
    user = auth.create_user(
        db, email=email, password=password, role="admin", display_name=name, actor=operator_actor()
    )
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
    """Make a new token signing secret (not a project secret): every access and refresh token
    stops working, and everyone logs in again."""
    cli = state(ctx)
    migrate.upgrade(cli.db)
    signing.rotate(cli.db, cli.settings)
    audit.record_now(cli.db, operator_actor(), "secrets.rotate", target_type="signing_secret")
    console.print("new token signing secret; every user must log in again", highlight=False)


def _project(db: Database, name: str | None) -> ProjectInfo | None:
    return None if name is None else projects.visible(db, OPERATOR, name)


@secrets_app.command("set")
def set_secret(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret's name, as in {{ secrets.NAME }}.")],
    project: ProjectOption = None,
) -> None:
    """Set a project secret; the value is asked for (hidden), or read from standard input."""
    cli = state(ctx)
    migrate.upgrade(cli.db)
    if sys.stdin.isatty():
        value = typer.prompt(f"value of {name}", hide_input=True)
    else:
        value = sys.stdin.read()
        value = value.removesuffix("\n")  # one trailing newline (echo, a file) is not the value
    if not value:
        raise ValidationFailed(f"no value given for {name} (type it, or pipe it on stdin)")
    found = _project(cli.db, project)
    created = secrets.set_secret(
        cli.db, cli.settings, project=found, name=name, value=value, actor=operator_actor()
    )
    where = f"project {found.name}" if found else "the default project"
    console.print(f"{name}: {'set' if created else 'replaced'} in {where}", highlight=False)


@secrets_app.command("list")
def list_secrets(
    ctx: typer.Context,
    project: ProjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The names of a project's secrets (never their values)."""
    cli = state(ctx)
    found = secrets.list_secrets(cli.db, project=_project(cli.db, project))
    if as_json:
        print_json([s.as_dict() for s in found])
        return
    table = Table("name", "updated", "by")
    for s in found:
        table.add_row(s.name, s.updated_at.strftime("%Y-%m-%d %H:%M:%S"), s.updated_by or "")
    console.print(table)


@secrets_app.command("unset")
def unset_secret(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    project: ProjectOption = None,
) -> None:
    """Delete a project secret."""
    cli = state(ctx)
    secrets.unset(cli.db, project=_project(cli.db, project), name=name, actor=operator_actor())
    console.print(f"{name}: unset", highlight=False)
