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


def test_validating_a_file_of_every_kind_loads_no_database_or_ai_stack(tmp_path) -> None:
    """``awe validate`` on a file with a step of every built-in kind (each kind's module is
    loaded to check its keys) imports neither SQLAlchemy, numpy, the LLM clients, the PII
    detectors nor the web app; a bad key in one step is still reported (exit 3), so the kinds'
    checks really ran."""
    from awe.engine.registry import default_registry

    kinds = sorted(default_registry.names())
    assert {"llm", "ingest", "retrieve", "scrub", "http", "shell"} <= set(kinds)
    steps = "".join(
        f"  - id: s{i}\n    kind: {kind}\n"
        + ("    with: {workflow: other}\n" if kind == "workflow" else "")
        for i, kind in enumerate(kinds)
    )
    good = tmp_path / "all.yaml"
    good.write_text(f"name: every-kind\nsteps:\n{steps}")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    kind: scrub\n    with: {txt: hi}\n")
    heavy = (*HEAVY, "detect_secrets", "jsonschema")
    code = (
        "import sys\n"
        "from awe.cli.main import app\n"
        f"for args in (['validate', {str(good)!r}], ['validate', {str(bad)!r}]):\n"
        "    try:\n"
        "        app(args=args, prog_name='awe')\n"
        "    except SystemExit as exc:\n"
        "        print('exit', exc.code)\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("exit")] == ["exit 0", "exit 3"], (
        done.stdout + done.stderr
    )
    assert "txt" in done.stderr, done.stderr
    assert lines[-1] == "[]", done.stdout
