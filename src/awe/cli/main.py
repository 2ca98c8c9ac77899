"""The ``awe`` command: the root Typer app and the one place errors become exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from awe import __version__
from awe.cli import (
    admin_cmd,
    backup_cmd,
    certs_cmd,
    config_cmd,
    db_cmd,
    doctor_cmd,
    erase_cmd,
    errors_cmd,
    knowledge_cmd,
    models_cmd,
    ops_cmd,
    pii_cmd,
    retention_cmd,
    run_cmd,
    runs_cmd,
    schedules_cmd,
    security_cmd,
    server_cmd,
    setup_cmd,
    validate_cmd,
    worker_cmd,
    workflows_cmd,
)
from awe.cli.context import CliState, err_console
from awe.core.errors import AweError

app = typer.Typer(
    name="awe",
    help="awe: the AI Workflow Engine. Durable AI workflows and runbooks on SQLite or PostgreSQL.",
    no_args_is_help=True,
    # Our own handler below decides what a user sees; never a traceback unless --debug.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
server_cmd.register(app)
worker_cmd.register(app)
validate_cmd.register(app)
run_cmd.register(app)
app.add_typer(runs_cmd.runs_app, name="runs")
app.add_typer(runs_cmd.dlq_app, name="dlq")
app.add_typer(workflows_cmd.app, name="workflows")
app.add_typer(schedules_cmd.app, name="schedules")
app.add_typer(knowledge_cmd.app, name="knowledge")
app.add_typer(pii_cmd.app, name="pii")
app.add_typer(retention_cmd.app, name="retention")
app.add_typer(models_cmd.app, name="models")
app.add_typer(admin_cmd.admin_app, name="admin")
app.add_typer(admin_cmd.audit_app, name="audit")
app.add_typer(admin_cmd.secrets_app, name="secrets")
doctor_cmd.register(app)
erase_cmd.register(app)
setup_cmd.register(app)
app.add_typer(ops_cmd.app, name="ops")
app.add_typer(certs_cmd.app, name="certs")
app.add_typer(backup_cmd.app, name="backup")
app.add_typer(security_cmd.app, name="security")
app.add_typer(errors_cmd.app, name="errors")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"awe {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logs.", envvar="AWE_DEBUG")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """awe: the AI Workflow Engine."""
    cli_state = CliState(debug=debug)
    ctx.obj = cli_state
    ctx.call_on_close(cli_state.close)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn AweError into a one-line message and its exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, prog_name="awe")
    except AweError as exc:
        if debug:
            raise
        err_console.print(
            Text.assemble(("error:", "bold red"), f" {exc.message}"),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            Text.assemble(
                ("error:", "bold red"),
                f" unexpected {type(exc).__name__}: {exc}"
                " (run again with --debug for the traceback)",
            ),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
