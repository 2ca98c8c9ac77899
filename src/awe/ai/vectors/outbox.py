"""Deletes an external vector index owes, kept durably until it has done them (an outbox).

The database is the source of truth; Qdrant holds a copy. When chunks or documents are deleted
in SQL, the same transaction writes a ``vector_deletes`` row naming their points; after the
commit :func:`drain` asks the index to delete them and removes the row once it has. An index
that is down leaves the row for the next drain (after each ingest and delete, at the leading
scheduler's ticks, and ``awe knowledge gc``), with a growing wait between attempts. Indexes
that are the rows themselves (pgvector, sqlite-vec, numpy) owe nothing: no row is written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, insert, select, update

from awe.core.clock import utcnow
from awe.core.logging import get_logger
from awe.storage.database import Database
from awe.storage.knowledge_models import VectorDelete

log = get_logger("knowledge")
#: The longest wait between two attempts of one delete.
MAX_BACKOFF = timedelta(minutes=10)
EXTERNAL = frozenset({"qdrant"})
_CREDENTIALS = re.compile(r"//[^/@\s]+@")


def enqueue(
    conn: Connection,
    index: object,
    *,
    chunk_ids: Sequence[str] = (),
    document_ids: Sequence[str] = (),
) -> None:
    """Owe ``index`` these deletes, in the caller's transaction (nothing when the index is the
    rows themselves)."""
    if getattr(index, "name", "") not in EXTERNAL or not (chunk_ids or document_ids):
        return
    conn.execute(
        insert(VectorDelete).values(
            chunk_ids=list(chunk_ids), document_ids=list(document_ids), attempts=0,
            next_at=utcnow(),
        )
    )  # fmt: skip


@dataclass(frozen=True)
class Drained:
    """What one drain did: deletes done, deletes that failed (and wait), and still owed."""

    done: int
    failed: int
    owed: int


def drain(
    db: Database,
    index: object,
    *,
    now: datetime | None = None,
    limit: int = 200,
    seconds: float = 5.0,
) -> Drained:
    """Do the owed deletes that are due, oldest first, for at most ``seconds``; the first that
    fails waits longer and ends the drain (the index is likely down: the rest wait too)."""
    if getattr(index, "name", "") not in EXTERNAL:
        return Drained(0, 0, 0)  # the rows are the index: nothing was ever owed to it
    now = now or utcnow()
    deadline = time.monotonic() + seconds
    with db.read() as conn:
        due = conn.execute(
            select(VectorDelete.id, VectorDelete.chunk_ids, VectorDelete.document_ids,
                   VectorDelete.attempts)
            .where(VectorDelete.next_at <= now).order_by(VectorDelete.id).limit(limit)
        ).all()  # fmt: skip
    done = failed = 0
    for item in due:
        if time.monotonic() > deadline:
            break
        try:
            if item.chunk_ids:
                index.deleted_chunks(list(item.chunk_ids))  # type: ignore[attr-defined]
            if item.document_ids:
                index.removed(list(item.document_ids))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - any failure of the index: try again later
            failed += 1
            wait = min(MAX_BACKOFF, timedelta(seconds=2 ** min(item.attempts + 1, 20)))
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            # A server URL may carry credentials: never store them.
            reason = f"{type(exc).__name__}: {_CREDENTIALS.sub('//***@', first)}"
            with db.write() as conn:
                conn.execute(
                    update(VectorDelete).where(VectorDelete.id == item.id).values(
                        attempts=VectorDelete.attempts + 1, next_at=now + wait,
                        last_error=reason,
                    )
                )  # fmt: skip
            log.warning("vector index delete failed; retried later", error=reason)
            break
        with db.write() as conn:
            conn.execute(delete(VectorDelete).where(VectorDelete.id == item.id))
        done += 1
    return Drained(done, failed, owed(db))


def owed(db: Database) -> int:
    """How many deletes the external index still owes."""
    with db.read() as conn:
        return int(conn.execute(select(func.count(VectorDelete.id))).scalar_one())
