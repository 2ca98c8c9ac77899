"""Step kinds ``ingest``, ``retrieve`` and ``embed``: the knowledge base inside workflows.

``ingest``: ``with: {documents: [id or name…], paths: [file or folder…]}`` — stored documents,
or files read from the worker's disk (checked like uploads), into the run's project. One bad
document is marked failed and the others go on; the output lists each.

``retrieve``: ``with: {query, top_k, documents, names, mimes}`` — the nearest chunks of the run's
project, with scores and sources, and their joined ``text`` for a prompt.

``embed``: ``with: {texts | text}`` — vectors from the configured embedder.
"""

from __future__ import annotations

from typing import Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.registry import step_kind


def _strings(params: dict[str, Any], key: str) -> list[str]:
    value = params.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed(f"with.{key} must be a list of strings")
    return list(value)


@step_kind(keys={"documents", "paths"}, privileged_keys={"paths"})
def run_ingest(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Ingest documents by id/name or by path; the output reports every document."""
    # The knowledge stack (embedders, extractors, PII) loads when a step runs, not when a file
    # naming this kind is checked (awe validate).
    from awe.ai.embeddings import get_embedder
    from awe.ai.knowledge import store
    from awe.ai.knowledge.ingest import ingest_document, store_files
    from awe.ai.vectors import choose_index

    if not isinstance(params, dict):
        raise ValidationFailed("ingest needs with: {documents: […]} or with: {paths: […]}")
    refs, paths = _strings(params, "documents"), _strings(params, "paths")
    if not refs and not paths:
        raise ValidationFailed("ingest needs with.documents (ids or names) or with.paths")
    settings, db = ctx.settings, ctx.db
    if paths and settings.ingest_root is None:
        raise ValidationFailed(
            "ingest: with.paths reads the worker's files, and no folder is open to it: the"
            " operator sets AWE_INGEST_ROOT to the folder ingest steps may read"
        )
    with db.read() as conn:
        project_key = store.run_project_key(conn, ctx.run_id)
    stored = store_files(db, settings, paths, project_key=project_key, root=settings.ingest_root)
    results: list[dict[str, Any]] = [
        {"name": path, "status": "refused", "error": reason} for path, reason in stored.refused
    ]
    ids = stored.to_ingest + stored.unchanged  # unchanged ones find every chunk already stored
    if refs:
        with db.read() as conn:
            known = store.get_documents(conn, project_key=project_key, refs=refs)
        missing = set(refs) - {d.id for d in known} - {d.name for d in known}
        if missing:
            raise ValidationFailed(
                f"ingest: no document {', '.join(sorted(missing))} in the project"
            )
        ids.extend(d.id for d in known)
    embedder = get_embedder(settings)
    index = choose_index(db, settings)
    total = len(ids)
    for n, document_id in enumerate(dict.fromkeys(ids)):

        def progress(name: str, done: int, chunks: int, n: int = n) -> None:
            share = (n + (done / chunks if chunks else 1)) / max(1, total)
            ctx.progress(share, f"{name}: {done}/{chunks} chunks")

        result = ingest_document(
            db,
            settings,
            embedder=embedder,
            index=index,
            document_id=document_id,
            progress=progress,
            check=ctx.check,
        )
        ctx.log(f"{result.name}: {result.status}, {result.chunks} chunks", document=result.name)
        results.append(result.as_dict())
    return {
        "documents": results,
        "ready": sum(1 for r in results if r["status"] == "ready"),
        "failed": sum(1 for r in results if r["status"] in ("failed", "refused")),
        "chunks": sum(int(r.get("chunks") or 0) for r in results),
    }


@step_kind(keys={"query", "top_k", "documents", "names", "mimes", "allow_mixed_versions"})
def run_retrieve(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Search the run's project's knowledge base."""
    from awe.ai.embeddings import get_embedder
    from awe.ai.knowledge import store
    from awe.ai.knowledge.retrieval import joined_text, retrieve
    from awe.ai.vectors import SearchFilter, choose_index

    if not isinstance(params, dict) or not isinstance(params.get("query"), str):
        raise ValidationFailed("retrieve needs with.query as text")
    top_k = params.get("top_k", 4)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise ValidationFailed(
            f"retrieve: with.top_k must be an integer from 1 to 100, not {top_k!r}"
        )
    where = SearchFilter(
        document_ids=_strings(params, "documents"),
        names=_strings(params, "names"),
        mimes=_strings(params, "mimes"),
    )
    with ctx.db.read() as conn:
        project_key = store.run_project_key(conn, ctx.run_id)
    found = retrieve(
        ctx.db,
        ctx.settings,
        embedder=get_embedder(ctx.settings),
        index=choose_index(ctx.db, ctx.settings),
        query=params["query"],
        project_key=project_key,
        top_k=top_k,
        where=where,
        allow_mixed=params.get("allow_mixed_versions") is True,
    )
    return {"chunks": [c.as_dict() for c in found], "text": joined_text(found)}


@step_kind(keys={"texts", "text", "query"})
def run_embed(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Embed ``with.texts`` (or ``with.text``) as passages, or ``with.query`` as a query."""
    from awe.ai.embeddings import get_embedder

    embedder = get_embedder(ctx.settings)
    if isinstance(params, dict) and isinstance(params.get("query"), str):
        vectors = [embedder.query(params["query"]).tolist()]
    else:
        if not isinstance(params, dict):
            raise ValidationFailed("embed needs with.texts (a list) or with.text")
        texts = _strings(params, "texts") or _strings(params, "text")
        if not texts:
            raise ValidationFailed("embed needs with.texts (a list) or with.text")
        vectors = embedder.passages(texts).tolist()
    return {
        "provider": embedder.provider,
        "model": embedder.model,
        "dim": len(vectors[0]) if vectors else 0,
        "vectors": vectors,
    }
