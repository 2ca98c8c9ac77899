"""``awe config``: show the effective settings."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from awe.cli.context import CliState, console, print_json, state
from awe.core.config import Settings, setting_env_names
from awe.core.config_sources import masked_url
from awe.core.errors import AweError
from awe.services import signing

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]


def effective_settings(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each setting's value (secrets and passwords masked) and the variables that set it."""
    names = setting_env_names()
    rows: dict[str, dict[str, Any]] = {}
    for field_name in Settings.model_fields:
        value: Any = getattr(settings, field_name)
        if field_name == "database_url":
            value = masked_url(settings.effective_database_url)
        elif field_name == "database_listen_url" and value is not None:
            value = masked_url(value)
        elif field_name == "log_format" and value is None:
            value = f"auto ({settings.effective_log_format})"
        elif isinstance(value, SecretStr):
            value = "***" if value.get_secret_value() else ""
        elif value is not None and not isinstance(value, bool | int | float | str):
            value = str(value)
        rows[field_name] = {
            "env": names[field_name],
            "value": value,
            "set": field_name in settings.model_fields_set,
        }
    return rows


def shared_state(cli: CliState) -> dict[str, str]:
    """What every process must share, compared with the database: the instance key (whose
    fingerprint the database recorded) and where the token signing secret comes from."""
    settings = cli.settings
    signing_source = (
        "AWE_JWT_SECRET" if settings.jwt_secret is not None else "the database (sealed)"
    )
    try:
        key = signing.key_status(cli.db, settings)
    except AweError as exc:
        key = f"unknown: {exc.message}"
    except DBAPIError as exc:  # a database not set up yet: the settings are still worth seeing
        key = f"unknown: {str(exc.orig).splitlines()[0][:200]}"
    return {"instance_key": key, "signing_secret": signing_source}


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print the effective settings, with secrets masked, and whether this process's instance
    key matches the one the database was set up with."""
    cli = state(ctx)
    rows = effective_settings(cli.settings)
    shared = shared_state(cli)
    if as_json:
        print_json({**{name: row["value"] for name, row in rows.items()}, "shared": shared})
        return
    table = Table("setting", "variable", "value", "from")
    for row in rows.values():
        table.add_row(
            row["env"][0],
            " / ".join(row["env"][1:]),
            str(row["value"]),
            "environment" if row["set"] else "default",
        )
    console.print(table)
    for name, value in shared.items():
        console.print(f"{name.replace('_', ' ')}: {value}", highlight=False)
