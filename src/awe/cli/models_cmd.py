"""``awe models``: the models an Ollama server has, and pulling new ones (with progress)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from awe.ai.llm.local import DEFAULT_MODEL, default_gguf
from awe.ai.llm.ollama import OllamaClient
from awe.cli.context import console, print_json, state
from awe.core.errors import AweError

app = typer.Typer(help="LLM models: the local one, and an Ollama server's.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """The bundled local model, and the Ollama server's models (if one answers)."""
    settings = state(ctx).settings
    rows: list[dict[str, Any]] = []
    try:
        path = settings.llm_model_path or default_gguf()
        rows.append({"provider": "local", "name": DEFAULT_MODEL, "size": path.stat().st_size})
    except AweError:
        pass
    ollama_error = None
    try:
        for model in OllamaClient(settings).list_models():
            rows.append({"provider": "ollama", "name": model["name"], "size": model.get("size")})
    except AweError as exc:
        ollama_error = exc.message
    if as_json:
        print_json({"models": rows, "ollama_error": ollama_error})
        return
    table = Table("provider", "model", "size")
    for row in rows:
        table.add_row(row["provider"], row["name"], f"{(row['size'] or 0) / 1e6:.0f} MB")
    console.print(table)
    if ollama_error:
        console.print(Text.assemble(("ollama:", "yellow"), f" {ollama_error}"), highlight=False)


@app.command("pull")
def pull(ctx: typer.Context, name: Annotated[str, typer.Argument(help="e.g. llama3.2")]) -> None:
    """Pull a model into the Ollama server (AWE_OLLAMA_URL), showing its progress."""
    client = OllamaClient(state(ctx).settings)
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, Any] = {}

        def show(line: dict[str, Any]) -> None:
            status = str(line.get("status", ""))
            key = str(line.get("digest") or status)
            if key not in tasks:
                tasks[key] = progress.add_task(status[:40], total=line.get("total"))
            progress.update(tasks[key], completed=line.get("completed"), total=line.get("total"))

        client.pull(name, show)
    console.print(f"{name}: pulled", highlight=False)
