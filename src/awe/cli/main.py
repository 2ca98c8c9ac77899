"""The ``awe`` command: the root Typer app and the one place errors become exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from awe import __version__
from awe.cli.context import CliState, err_console
from awe.cli.lazy import LazyGroup
from awe.core.errors import AweError

app = typer.Typer(
    name="awe",
    cls=LazyGroup,  # each command's module is imported only when it runs
    help="awe: the AI Workflow Engine. Durable AI workflows and runbooks on SQLite or PostgreSQL.",
    no_args_is_help=True,
    # Our own handler below decides what a user sees; never a traceback unless --debug.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
