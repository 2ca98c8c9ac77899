"""Retrieval: the chunks nearest a query, with their scores and sources, and their joined text."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from awe.ai.embeddings import Embedder
from awe.ai.knowledge import store
from awe.ai.vectors import SearchFilter, VectorIndex
from awe.core.config import Settings
from awe.core.errors import Conflict
from awe.storage.database import Database


@dataclass(frozen=True)
class RetrievedChunk:
    """One search result."""

    chunk_id: str
    document_id: str
    document: str
    source: str
    chunk_index: int
    score: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


class MixedVersions(Conflict):
    """Some documents are embedded at another version only: a search would miss them."""


def retrieve(
    db: Database,
    settings: Settings,
    *,
    embedder: Embedder,
    index: VectorIndex,
    query: str,
    project_key: str,
    top_k: int,
    where: SearchFilter | None = None,
    allow_mixed: bool = False,
) -> list[RetrievedChunk]:
    """The ``top_k`` chunks of the project's knowledge base nearest ``query``, best first.

    Only chunks at ``AWE_EMBEDDING_VERSION`` are searched (scores of other models' vectors do
    not compare). While some documents have vectors of another version only (before or during
    ``awe knowledge reindex``), a search would silently leave them out: it is refused, unless
    ``allow_mixed`` says to search the current version anyway."""
    version = settings.embedding_version
    if not allow_mixed:
        with db.read() as conn:
            stale = store.behind(conn, project_key, version)
        if stale:
            named = ", ".join(f"{name} (version {v})" for name, v in stale[:5])
            more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
            raise MixedVersions(
                f"{len(stale)} document(s) of this knowledge base have vectors of another"
                f" embedding version than the current {version!r} only: {named}{more}. A"
                " search would leave them out: run awe knowledge reindex (or awe knowledge"
                " remove them), or search with allow_mixed (--allow-mixed) to search the"
                " current version anyway"
            )
    vector = embedder.query(query)
    with db.read() as conn:
        hits = index.search(
            conn,
            vector,
            project_key=project_key,
            version=version,
            top_k=top_k,
            where=where or SearchFilter(),
        )
        details = store.chunk_details(conn, [h.chunk_id for h in hits])
    found = []
    for hit in hits:
        row = details.get(hit.chunk_id)
        if row is None:  # an external index may still hold a chunk that was pruned
            continue
        found.append(
            RetrievedChunk(
                chunk_id=hit.chunk_id,
                document_id=row.document_id,
                document=row.name,
                source=row.source,
                chunk_index=row.chunk_index,
                score=round(hit.score, 6),
                text=row.text,
            )
        )
    return found


def joined_text(chunks: list[RetrievedChunk]) -> str:
    """The chunks' texts as one context block, each headed by its source."""
    return "\n\n".join(f"[{c.document} #{c.chunk_index}]\n{c.text}" for c in chunks)
