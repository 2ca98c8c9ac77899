"""The CLI starts light: importing it, and running ``awe --version``, loads none of the web
app, numpy, the LLM clients or llama.cpp (each command's module loads when it runs); every
command named in the root still loads and has its sub-commands."""

from __future__ import annotations

import subprocess
import sys

import typer.main
from typer._click import core as click

from awe.cli.lazy import COMMANDS, load
from awe.cli.main import app

HEAVY = ("fastapi", "numpy", "openai", "anthropic", "llama_cpp", "uvicorn", "sqlalchemy")


def test_importing_the_cli_and_asking_its_version_stays_light() -> None:
    """In a fresh interpreter, after importing awe.cli.main and running --version, none of
    the heavy modules is in sys.modules (and the version was printed)."""
    code = (
        "import sys\n"
        "from awe.cli.main import app\n"
        "try:\n"
        "    app(args=['--version'], prog_name='awe')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    assert done.stdout.splitlines()[0].startswith("awe ")
    assert done.stdout.splitlines()[-1] == "[]", done.stdout


def test_every_lazy_command_loads() -> None:
    """Each name of the root's table loads a click command of that name; groups have
    sub-commands; an unknown name is None."""
    root = typer.main.get_command(app)
    context = click.Context(root)
    assert list(root.list_commands(context)) == list(COMMANDS)
    for name in COMMANDS:
        command = load(name)
        assert command.name == name
        if COMMANDS[name][1] is not None:
            assert hasattr(command, "list_commands")
            assert command.list_commands(click.Context(command))
    assert root.get_command(context, "no-such-command") is None


def test_the_table_names_every_command_a_module_registers() -> None:
    """A module that adds commands to the root adds exactly the ones the table maps to it: a
    command added there but not to the table would never be reachable."""
    import importlib

    import typer

    modules = {module for module, attribute in COMMANDS.values() if attribute is None}
    for module in sorted(modules):
        holder = typer.Typer()
        importlib.import_module(module).register(holder)
        registered = set(typer.main.get_group(holder).commands)
        named = {name for name, (m, attribute) in COMMANDS.items() if m == module}
        assert registered == named, module
