"""``awe validate``: check workflow files without running them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from awe.cli.context import console, err_console, print_json, state
from awe.engine.files import WorkflowFileInvalid, load_file
from awe.engine.registry import default_registry

INVALID_EXIT = 3


def register(app: typer.Typer) -> None:
    """Add ``validate`` to the root app."""

    @app.command("validate")
    def validate(
        ctx: typer.Context,
        files: Annotated[list[Path], typer.Argument(help="Workflow YAML files.")],
        project: Annotated[
            str | None,
            typer.Option(
                "--project",
                help="Also check that the secrets they read are set there ('' for the default).",
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Check workflow files; print every problem as file:line:col; exit 3 if any is invalid.

        No database is needed, unless --project asks to check secret names.
        """
        known = None
        if project is not None:
            from awe.services import secrets  # the database only when --project asks for it
            from awe.services.projects import project_key

            db = state(ctx).db
            known = secrets.known_names(db, project_key=project_key(db, project or None))
        report: dict[str, list[dict[str, object]]] = {}
        for path in files:
            problems: list[dict[str, object]] = []
            try:
                if not path.is_file():
                    problems = [{"line": 0, "col": 0, "message": "no such file"}]
                else:
                    load_file(path, known_kind=default_registry.knows, known_secrets=known)
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
                        markup=False,
                        soft_wrap=True,
                    )
            else:
                console.print(f"{path}: ok", highlight=False, markup=False)
        if as_json:
            print_json(report)
        if any(report.values()):
            raise typer.Exit(INVALID_EXIT)
