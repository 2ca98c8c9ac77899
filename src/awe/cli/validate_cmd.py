"""``awe validate``: check workflow files without running them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from awe.cli.context import console, err_console, print_json
from awe.engine.files import WorkflowFileInvalid, load_file
from awe.engine.registry import default_registry

INVALID_EXIT = 3


def register(app: typer.Typer) -> None:
    """Add ``validate`` to the root app."""

    @app.command("validate")
    def validate(
        files: Annotated[list[Path], typer.Argument(help="Workflow YAML files.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Check workflow files; print every problem as file:line:col; exit 3 if any is invalid."""
        report: dict[str, list[dict[str, object]]] = {}
        for path in files:
            problems: list[dict[str, object]] = []
            try:
                if not path.is_file():
                    problems = [{"line": 0, "col": 0, "message": "no such file"}]
                else:
                    load_file(path, known_kind=default_registry.knows)
            except WorkflowFileInvalid as exc:
                problems = [p.__dict__ for p in exc.problems]
            report[str(path)] = problems
            if as_json:
                continue
            if problems:
                for p in problems:
                    err_console.print(
                        f"{path}:{p['line']}:{p['col']}: {p['message']}",
                        highlight=False,
                        soft_wrap=True,
                    )
            else:
                console.print(f"{path}: ok", highlight=False)
        if as_json:
            print_json(report)
        if any(report.values()):
            raise typer.Exit(INVALID_EXIT)
