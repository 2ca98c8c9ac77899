"""The root command's sub-commands, each loaded from its module only when it is run (or when
``--help`` lists them): ``awe --version`` and ``awe validate`` do not import the web app, the AI
libraries or every service first."""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer._click import core as click
from typer.core import TyperGroup

#: Command name -> (module, how it joins the root): a Typer group's attribute, or None for a
#: module whose ``register(app)`` adds its commands to the root.
COMMANDS: dict[str, tuple[str, str | None]] = {
    "config": ("awe.cli.config_cmd", "app"),
    "db": ("awe.cli.db_cmd", "app"),
    "up": ("awe.cli.server_cmd", None),
    "serve": ("awe.cli.server_cmd", None),
    "worker": ("awe.cli.worker_cmd", None),
    "scheduler": ("awe.cli.worker_cmd", None),
    "workers": ("awe.cli.worker_cmd", None),
    "validate": ("awe.cli.validate_cmd", None),
    "run": ("awe.cli.run_cmd", None),
    "runs": ("awe.cli.runs_cmd", "runs_app"),
    "dlq": ("awe.cli.runs_cmd", "dlq_app"),
    "workflows": ("awe.cli.workflows_cmd", "app"),
    "schedules": ("awe.cli.schedules_cmd", "app"),
    "knowledge": ("awe.cli.knowledge_cmd", "app"),
    "pii": ("awe.cli.pii_cmd", "app"),
    "retention": ("awe.cli.retention_cmd", "app"),
    "models": ("awe.cli.models_cmd", "app"),
    "admin": ("awe.cli.admin_cmd", "admin_app"),
    "audit": ("awe.cli.admin_cmd", "audit_app"),
    "secrets": ("awe.cli.admin_cmd", "secrets_app"),
    "doctor": ("awe.cli.doctor_cmd", None),
    "erase": ("awe.cli.erase_cmd", None),
    "setup": ("awe.cli.setup_cmd", None),
    "reset": ("awe.cli.setup_cmd", None),
    "ops": ("awe.cli.ops_cmd", "app"),
    "certs": ("awe.cli.certs_cmd", "app"),
    "backup": ("awe.cli.backup_cmd", "app"),
    "security": ("awe.cli.security_cmd", "app"),
    "errors": ("awe.cli.errors_cmd", "app"),
}
_registered: dict[str, dict[str, click.Command]] = {}


class LazyGroup(TyperGroup):
    """A Typer group that imports a sub-command's module the first time it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, loaded or not, in the order above."""
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its module imported now."""
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        return load(cmd_name)


def load(name: str) -> click.Command:
    """The click command of ``name`` (its module imported)."""
    module_name, attribute = COMMANDS[name]
    module: Any = importlib.import_module(module_name)
    if attribute is not None:
        group = typer.main.get_group(getattr(module, attribute))
        group.name = name
        return group
    if module_name not in _registered:
        holder = typer.Typer()
        module.register(holder)
        _registered[module_name] = dict(typer.main.get_group(holder).commands)
    return _registered[module_name][name]
