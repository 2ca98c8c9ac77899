"""``awe certs``: a private CA and certificates for HTTPS and mTLS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.cli.operation import JsonOption, line, operation, show_report
from awe.core.errors import ValidationFailed
from awe.services import certificates

app = typer.Typer(
    help="Certificates: a private CA, server and client certificates.", no_args_is_help=True
)


def _shown(info: certificates.CertInfo) -> str:
    sans = f", SANs {', '.join(info.sans)}" if info.sans else ""
    return f"{info.name} ({info.kind}{sans}) until {info.not_after:%Y-%m-%d}: {info.path}"


@app.command("init")
@operation("certs init")
def init(
    ctx: typer.Context,
    days: Annotated[int, typer.Option("--days", min=1, help="How long the CA is valid.")] = 3650,
) -> None:
    """Make the private CA (ca.pem, ca.key 0600, ca-bundle.pem)."""
    info = certificates.init(state(ctx).settings, days=days)
    line("certs", "INFO", f"made the CA {_shown(info)}")


@app.command("issue")
@operation("certs issue")
def issue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="File name of the certificate: server, worker-1…")],
    san: Annotated[
        list[str] | None,
        typer.Option("--san", help="Host name or IP it is for (repeat). Default: localhost."),
    ] = None,
    client: Annotated[bool, typer.Option("--client", help="A client certificate (mTLS).")] = False,
    server: Annotated[
        bool, typer.Option("--server", help="A server certificate (default).")
    ] = False,
    days: Annotated[int, typer.Option("--days", min=1, help="How long it is valid.")] = 397,
) -> None:
    """Issue (or re-issue) a certificate signed by the CA: NAME.pem (with the CA) and NAME.key."""
    if client and server:
        raise ValidationFailed("a certificate is --client or --server, not both")
    info = certificates.issue(
        state(ctx).settings, name, sans=san or [], kind="client" if client else "server", days=days
    )
    line("certs", "INFO", f"issued {_shown(info)}")


@app.command("list")
def list_certs(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The CA and the certificates, with their expiry."""
    found = certificates.listed(state(ctx).settings)
    now = datetime.now(UTC)
    if as_json:
        print_json([c.as_dict(now) for c in found])
        return
    if not found:
        console.print("no certificate yet: awe certs init", highlight=False)
        return
    table = Table("name", "kind", "SANs", "expires", "days left")
    for c in found:
        table.add_row(
            c.name, c.kind, ", ".join(c.sans), f"{c.not_after:%Y-%m-%d}", f"{c.days_left(now):.0f}"
        )
    console.print(table)


@app.command("check")
@operation("certs check")
def check(
    ctx: typer.Context,
    warn_days: Annotated[
        int, typer.Option("--warn-days", min=0, help="Warn this many days before expiry.")
    ] = 30,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Each certificate parses, is not expiring, has its key, and is signed by the CA."""
    cli = state(ctx)
    found = certificates.check(cli.settings, warn_days=warn_days)
    cli.report = found.as_dict()
    show_report("certs", found, as_json=as_json)
    raise typer.Exit(found.exit_code(strict=strict))


@app.command("rotate")
@operation("certs rotate")
def rotate(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The certificate, or 'ca' for a new CA.")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Re-issue every certificate under the current CA.")
    ] = False,
) -> None:
    """Re-issue a certificate with its SANs; 'ca' makes a new CA (the old one stays trusted
    until --all re-issues every certificate under the new one)."""
    if (name is None) == (not every):
        raise ValidationFailed("name a certificate, 'ca', or pass --all")
    for info in certificates.rotate(state(ctx).settings, None if every else name):
        line("certs", "INFO", f"re-issued {_shown(info)}")
