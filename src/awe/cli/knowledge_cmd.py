"""``awe knowledge``: add, list, remove, search and re-index the knowledge base."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from awe.cli.context import console, err_console, print_json, state
from awe.cli.operation import DryRunOption, dry_run, line, operation
from awe.cli.watch import watch_run
from awe.core.errors import ValidationFailed
from awe.engine import states
from awe.engine.client import Engine
from awe.services import knowledge
from awe.storage import migrate

app = typer.Typer(help="The knowledge base: documents for retrieval.", no_args_is_help=True)

ProjectOption = Annotated[str | None, typer.Option("--project", help="Project name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DetachOption = Annotated[
    bool, typer.Option("--detach", help="Start the ingest run and print its id; do not wait.")
]


def _wait(ctx: typer.Context, run_id: str, *, detach: bool, as_json: bool) -> bool:
    """Wait for an ingest run (unless detached); True when it succeeded."""
    cli = state(ctx)
    engine = Engine(cli.db)
    if detach:
        return True
    record = watch_run(engine, run_id, engine.get_run(run_id).spec, cli.settings)
    if not as_json:
        output = record.steps[0].output or {}
        table = Table("document", "status", "chunks", "error", title=f"ingest run {run_id}")
        for doc in output.get("documents", []):
            table.add_row(
                doc["name"], doc["status"], str(doc.get("chunks") or 0), doc.get("error") or ""
            )
        console.print(table)
        if record.status != states.RUN_SUCCEEDED:
            err_console.print(
                f"ingest run {run_id} {record.status}: {record.error}", highlight=False
            )
    return record.status == states.RUN_SUCCEEDED


@app.command("add")
def add(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (txt, md, html, pdf…).")],
    project: ProjectOption = None,
    detach: DetachOption = False,
    as_json: JsonOption = False,
) -> None:
    """Check and store documents, then ingest them (extract, scrub PII, chunk, embed)."""
    cli = state(ctx)
    migrate.upgrade(cli.db)
    for path in paths:
        if not path.exists():
            raise ValidationFailed(f"{path}: no such file or folder")
    report = knowledge.add(cli.db, cli.settings, paths, project=project)
    for _path, reason in report.refused:
        err_console.print(Text.assemble(("refused:", "yellow"), f" {reason}"), highlight=False)
    ok = True
    if report.run_id is not None:
        ok = _wait(ctx, report.run_id, detach=detach, as_json=as_json)
    elif not as_json:
        console.print("nothing new to ingest", highlight=False)
    if as_json:
        documents = knowledge.list_documents(cli.db, project=project)
        stored = {d.id for d in report.stored}
        print_json(
            {
                "run_id": report.run_id,
                "documents": [d.as_dict() for d in documents if d.id in stored],
                "refused": [{"path": p, "error": e} for p, e in report.refused],
            }
        )
    elif detach and report.run_id:
        console.print(report.run_id, highlight=False)
    if report.refused:
        raise typer.Exit(3)  # the rest was stored: fix or drop the refused files
    if not ok:
        raise typer.Exit(1)


@app.command("list")
def list_(ctx: typer.Context, project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Documents with their state, size and chunk count."""
    documents = knowledge.list_documents(state(ctx).db, project=project)
    if as_json:
        print_json([d.as_dict() for d in documents])
        return
    table = Table("id", "name", "type", "bytes", "status", "chunks", "error")
    for d in documents:
        table.add_row(
            d.id, d.name, d.mime, str(d.size), d.status, str(d.chunk_count), d.error or ""
        )
    console.print(table)


@app.command("remove")
def remove(
    ctx: typer.Context,
    refs: Annotated[list[str], typer.Argument(help="Document ids or names.")],
    project: ProjectOption = None,
) -> None:
    """Delete documents with their chunks and vectors."""
    cli = state(ctx)
    removed = knowledge.remove(cli.db, cli.settings, refs, project=project)
    console.print(f"removed {len(removed)} document(s)", highlight=False)


@app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100, help="How many.")] = 4,
    project: ProjectOption = None,
    allow_mixed: Annotated[
        bool,
        typer.Option(
            "--allow-mixed",
            help="Search the current embedding version even while documents wait for a reindex.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The chunks nearest QUERY, with their scores and sources."""
    cli = state(ctx)
    found = knowledge.search(
        cli.db, cli.settings, query, top_k=top_k, project=project, allow_mixed=allow_mixed
    )
    if as_json:
        print_json([c.as_dict() for c in found])
        return
    for c in found:
        console.print(
            Text.assemble((f"{c.score:.3f}", "bold"), f"  {c.document} #{c.chunk_index}"),
            highlight=False,
        )
        console.print(c.text[:400], highlight=False, markup=False)
        console.print()


@app.command("reindex")
def reindex(
    ctx: typer.Context,
    project: ProjectOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every document, not only stale ones.")
    ] = False,
    detach: DetachOption = False,
    as_json: JsonOption = False,
) -> None:
    """Re-embed documents after AWE_EMBEDDING_VERSION changed (durably, as a run)."""
    cli = state(ctx)
    ids, run_id = knowledge.reindex(cli.db, cli.settings, project=project, everything=all_)
    if run_id is None:
        if as_json:
            print_json({"run_id": None, "documents": []})
        else:
            console.print("every document is at the current embedding version", highlight=False)
        return
    ok = _wait(ctx, run_id, detach=detach, as_json=as_json)
    if as_json:
        print_json({"run_id": run_id, "documents": ids})
    elif detach:
        console.print(run_id, highlight=False)
    if not ok:
        raise typer.Exit(1)


@app.command("gc")
@operation("knowledge gc")
def gc(ctx: typer.Context, dry_run_flag: DryRunOption = False, as_json: JsonOption = False) -> None:
    """Do the deletes an external vector index (Qdrant) still owes, then remove its points
    whose chunks no longer exist; report the counts (a dry run only counts, exit 10)."""
    cli = state(ctx)
    preview = dry_run(cli, dry_run_flag)
    done = knowledge.gc(cli.db, cli.settings, dry_run=preview)
    cli.report = {**done.as_dict(), "dry_run": preview}
    if as_json:
        print_json(cli.report)
    elif done.points == 0 and done.deletes_owed == 0 and done.deletes_done == 0:
        line("knowledge", "INFO", f"{done.index}: nothing to collect")
    else:
        verb = "would remove" if preview else "removed"
        line("knowledge", "INFO", f"{done.index}: {done.deletes_done} owed deletes done,"
             f" {done.deletes_failed} failed ({done.deletes_owed} still owed)")  # fmt: skip
        line("knowledge", "INFO", f"{done.points} points checked, {verb} {done.orphans} orphans")
    if preview:
        raise typer.Exit(10)


@app.command("versions")
def versions(
    ctx: typer.Context, project: ProjectOption = None, as_json: JsonOption = False
) -> None:
    """Chunks per embedding version and model; the current version (AWE_EMBEDDING_VERSION)
    first. More than one version means some documents wait for ``awe knowledge reindex``."""
    cli = state(ctx)
    found = knowledge.versions(cli.db, cli.settings, project=project)
    current = cli.settings.embedding_version
    if as_json:
        print_json([{**vars(v), "current": v.version == current} for v in found])
        return
    table = Table("version", "model", "documents", "chunks", "")
    for v in found:
        table.add_row(v.version, v.model or "?", str(v.documents), str(v.chunks),
                      "current" if v.version == current else "reindex")  # fmt: skip
    console.print(table)
