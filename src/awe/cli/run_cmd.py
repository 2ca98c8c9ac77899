"""``awe run FILE``: run a workflow file and watch it, in-process when no worker is running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from awe.cli.context import console, print_json, state
from awe.cli.watch import watch_run
from awe.core.errors import ValidationFailed
from awe.engine import states
from awe.engine.client import Engine
from awe.engine.files import load_file
from awe.engine.registry import default_registry
from awe.services import audit, workflows
from awe.services.tokens import operator_actor
from awe.storage import migrate


def _parse_inputs(pairs: list[str], input_file: Path | None) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if input_file is not None:
        from ruamel.yaml import YAML

        loaded = YAML(typ="safe").load(input_file.read_text(encoding="utf-8-sig"))
        if not isinstance(loaded, dict):
            raise ValidationFailed(f"{input_file}: expected a mapping of input name to value")
        given.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValidationFailed(f"--input {pair!r}: expected NAME=VALUE")
        given[name.strip()] = value
    return given


def register(app: typer.Typer) -> None:
    """Add ``run`` to the root app."""

    @app.command("run")
    def run(
        ctx: typer.Context,
        target: Annotated[
            str,
            typer.Argument(metavar="FILE|NAME", help="Workflow file, or a stored workflow's name."),
        ],
        version: Annotated[
            int | None, typer.Option("--version", help="Stored version (default: latest).")
        ] = None,
        input_: Annotated[
            list[str] | None, typer.Option("--input", "-i", help="NAME=VALUE (repeatable).")
        ] = None,
        input_file: Annotated[
            Path | None, typer.Option("--input-file", help="Inputs as JSON or YAML.")
        ] = None,
        verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Stream step logs.")] = False,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the final run as JSON.")
        ] = False,
        detach: Annotated[
            bool, typer.Option("--detach", help="Only submit; print the run id.")
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option("--dry-run", help="Preview: scripts get DRY_RUN=true, nothing is sent."),
        ] = False,
    ) -> None:
        """Run a workflow file or stored workflow; exit 0 if the run succeeded, 1 if not."""
        cli = state(ctx)
        migrate.upgrade(cli.db)
        pinned: int | None = None
        trusted = True  # the operator; a stored version keeps its pusher's privileges
        if Path(target).is_file() and version is None:
            spec = load_file(Path(target), known_kind=default_registry.knows)
        elif Path(target).suffix in (".yaml", ".yml") and not Path(target).exists():
            raise ValidationFailed(f"{target}: no such workflow file")
        else:
            stored = workflows.get(cli.db, target, version=version)
            spec, pinned, trusted = stored.spec, stored.version, stored.trusted
        inputs = _parse_inputs(input_ or [], input_file)  # checked and typed by submit
        engine = Engine(cli.db)
        run_id = engine.submit(
            spec,
            inputs,
            workflow_version=pinned,
            dry_run=dry_run or cli.settings.dry_run,
            trusted=trusted,
        )
        audit.record_now(
            cli.db,
            operator_actor(),
            "run.start",
            target_type="run",
            target_id=run_id,
            details={"workflow": spec["name"], "version": pinned},
        )
        if detach:
            console.print(run_id, highlight=False)
            return
        record = watch_run(engine, run_id, spec, cli.settings, verbose=verbose)
        if as_json:
            data = record.as_dict()
            print_json(
                {
                    "id": data["id"],
                    "status": data["status"],
                    "outputs": data["outputs"],
                    "steps": data["steps"],
                }
            )
        elif record.outputs:
            console.print_json(json.dumps(record.outputs, default=str))
        if record.status != states.RUN_SUCCEEDED:
            raise typer.Exit(1)
