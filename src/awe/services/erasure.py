"""Erasure of one data subject (``awe erase``, ``POST /api/v1/admin/erasures``): find them
everywhere (awe.services.subject_search), delete or pseudonymize each row by its table's rule
(awe.services.erasure_rows), then prove it: a second search finds nothing, the vectors of the
deleted documents are gone from the SQL rows and from Qdrant (by filter count and by id), and on
SQLite the file and its WAL no longer hold the deleted bytes. A receipt says what was done, what
was kept and why, and when the last backup holding a copy expires; the audit entry and the
receipt hold the subject's keyed hash only; the erasure ledger lets a restore re-apply it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from awe.ai.vectors import VectorIndex, choose_index, outbox
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.crypto import instance_key
from awe.core.errors import AweError, ValidationFailed
from awe.core.ids import new_id
from awe.ops import backup, erasure_ledger
from awe.services import audit, erasure_rows
from awe.services.audit import Actor
from awe.services.erasure_rows import KEPT, Done, Plan, Pseudonymizer
from awe.services.subject_search import Subject, find
from awe.services.tokens import operator_actor
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk

MODES = ("delete", "pseudonymize")
#: Find-and-erase rounds at most (a worker may write the subject again meanwhile).
PASSES = 3


@dataclass
class Receipt:
    """What an erasure did and proved, without the subject's values."""

    request_id: str
    subject: str
    mode: str
    dry_run: bool
    at: datetime
    #: Rows holding the subject before, per table.
    found: dict[str, int]
    #: Rows deleted and pseudonymized, per table (for a dry run: what would be).
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Rows the second search still found, per table (empty when verified).
    remaining: dict[str, int] = field(default_factory=dict)
    vectors: dict[str, Any] = field(default_factory=dict)
    retained: list[dict[str, Any]] = field(default_factory=list)
    backups: dict[str, Any] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)
    verified: bool = False
    #: Why it is not verified, when it is not.
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        result = asdict(self)
        result["at"] = self.at.isoformat()
        return result


def erase(
    db: Database,
    settings: Settings,
    *,
    email: str | None = None,
    user: str | None = None,
    value: str | None = None,
    mode: str = "delete",
    dry_run: bool = False,
    actor: Actor | None = None,
    subject: Subject | None = None,
    request_id: str | None = None,
) -> Receipt:
    """Erase the subject (named by one of ``email``, ``user``, ``value``, or given as
    ``subject`` when a restore re-applies the ledger) and verify it. ValidationFailed for a
    bad request, Conflict (nothing changed) when a run holding them is still open."""
    if mode not in MODES:
        raise ValidationFailed(f"--mode {mode!r} is not one of: {', '.join(MODES)}")
    reapplied = subject is not None
    subject = subject or Subject.of(db, email=email, user=user, value=value)
    tag = instance_key(settings).tag(subject.values[0].casefold())
    found = find(db, subject)
    the_plan = erasure_rows.plan(db, subject, found, mode=mode)
    receipt = Receipt(
        request_id=request_id or new_id(),
        subject=tag,
        mode=mode,
        dry_run=dry_run,
        at=utcnow(),
        found=found.counts(),
    )
    who = actor or operator_actor()
    if dry_run:
        receipt.tables = _planned(the_plan)
        receipt.retained = _retained(the_plan, receipt.tables, settings, db)
        _audit(db, who, receipt)
        return receipt
    if not reapplied:
        # Before any change: a restore re-applies the erasure even if this one stops midway.
        entry = erasure_ledger.Entry(
            receipt.request_id, receipt.at, mode, tag, subject.values, subject.user_id
        )
        erasure_ledger.append(settings, entry)
    done = Done()
    pseudonymize = Pseudonymizer(subject, f"erased-{tag}")
    index = choose_index(db, settings)
    try:
        _erase_all(db, index, subject, the_plan, mode, pseudonymize, done, receipt)
    finally:
        receipt.tables = done.tables
        _audit(db, who, receipt)
    receipt.vectors = _vectors(db, index, done)
    receipt.storage = _storage(db)
    receipt.backups = _backups(settings, receipt.at)
    receipt.retained = _retained(the_plan, receipt.tables, settings, db, subject=subject)
    receipt.problems = _problems(receipt)
    receipt.verified = not receipt.problems
    return receipt


def _erase_all(
    db: Database,
    index: VectorIndex,
    subject: Subject,
    the_plan: Plan,
    mode: str,
    pseudonymize: Pseudonymizer,
    done: Done,
    receipt: Receipt,
) -> None:
    """Apply the plan, search again, and erase what a worker wrote meanwhile (a few rounds)."""
    personal = Subject(subject.values)
    for round_number in range(PASSES):
        erasure_rows.apply(db, index, the_plan, pseudonymize, done)
        remaining = find(db, personal)
        receipt.remaining = remaining.counts()
        if not receipt.remaining or round_number == PASSES - 1:
            return
        again = find(db, subject)
        the_plan = erasure_rows.plan(db, subject, again, mode=mode)


def _audit(db: Database, who: Actor, receipt: Receipt) -> None:
    audit.record_now(
        db,
        who,
        "subject.erase",
        target_type="subject",
        target_id=receipt.subject,
        details={
            "request_id": receipt.request_id,
            "mode": receipt.mode,
            "dry_run": receipt.dry_run,
            "found": receipt.found,
            "tables": receipt.tables,
        },
    )


def _planned(the_plan: Plan) -> dict[str, dict[str, int]]:
    tables: dict[str, dict[str, int]] = {}
    for table, keys in the_plan.deletes.items():
        tables.setdefault(table, {"deleted": 0, "pseudonymized": 0})["deleted"] += len(keys)
    for table, rows in the_plan.rewrites.items():
        tables.setdefault(table, {"deleted": 0, "pseudonymized": 0})["pseudonymized"] += len(rows)
    if the_plan.account is not None:
        entry = tables.setdefault("users", {"deleted": 0, "pseudonymized": 0})
        entry["deleted" if the_plan.account[1] else "pseudonymized"] += 1
    return dict(sorted(tables.items()))


def _vectors(db: Database, index: VectorIndex, done: Done) -> dict[str, Any]:
    """The deleted documents' vectors, looked for in the SQL rows (by document and by chunk id)
    and, for Qdrant, in its collections (after doing the owed deletes now)."""
    documents, chunks = sorted(done.documents), sorted(done.chunks)
    result: dict[str, Any] = {"backend": index.name, "documents": len(documents),
                              "chunks": len(chunks)}  # fmt: skip
    with db.read() as conn:
        result["rows_by_document"] = _in(conn, Chunk.document_id, documents)
        result["rows_by_id"] = _in(conn, Chunk.id, chunks)
    if index.name == "qdrant" and documents:
        outbox.drain(db, index, seconds=30.0)
        result["owed_deletes"] = outbox.owed(db)
        try:
            result["points_by_filter"] = sum(index.count(d) for d in documents)  # type: ignore[attr-defined]
            result["points_by_id"] = index.present(chunks)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - any client error: not verified, and why
            result["error"] = f"Qdrant did not answer: {type(exc).__name__}: {str(exc)[:200]}"
    counted = [v for k, v in result.items() if k.startswith(("rows_", "points_"))]
    result["absent"] = "error" not in result and not any(counted)
    return result


def _in(conn: Any, column: Any, values: list[str]) -> int:
    total = 0
    for start in range(0, len(values), 500):
        part = values[start : start + 500]
        total += int(conn.execute(select(func.count()).where(column.in_(part))).scalar_one())
    return total


def _storage(db: Database) -> dict[str, Any]:
    """SQLite: deleted cells are zeroed (secure_delete, on for every connection), and the WAL,
    which still holds the pages as they were, is checkpointed and truncated to nothing."""
    if not db.is_sqlite:
        return {"backend": "postgresql"}
    raw = db.engine.raw_connection()
    try:
        handle = raw.driver_connection
        secure = handle.execute("PRAGMA secure_delete").fetchone()[0]  # type: ignore[union-attr]
        for _ in range(20):  # a reader's snapshot holds the WAL: wait for it a little
            busy, _log, _moved = handle.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()  # type: ignore[union-attr]
            if not busy:
                break
            time.sleep(0.25)
    finally:
        raw.close()
    return {"backend": "sqlite", "secure_delete": bool(secure), "wal_truncated": not busy}


def _backups(settings: Settings, at: datetime) -> dict[str, Any]:
    older = [b for b in backup.listed(settings.effective_backup_dir) if b.created_at <= at]
    if not older:
        return {"holding_copies": 0}
    oldest = min(older, key=lambda b: b.created_at)
    days = settings.backup_keep_days
    return {
        "holding_copies": len(older),
        "oldest": oldest.name,
        "oldest_taken_at": oldest.created_at.isoformat(),
        # When awe backup prune may delete it (it keeps the newest few longer).
        "oldest_expires_at": (oldest.created_at + timedelta(days=days)).isoformat(),
        "restore": "awe backup restore re-applies this erasure from the erasure ledger",
    }


def _retained(
    the_plan: Plan,
    tables: dict[str, dict[str, int]],
    settings: Settings,
    db: Database,
    *,
    subject: Subject | None = None,
) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for table, why in KEPT.items():
        n = tables.get(table, {}).get("pseudonymized", 0)
        if n:
            kept.append({"what": table, "rows": n, "as": "pseudonymized", "why": why})
    if the_plan.account is not None and not the_plan.account[1]:
        why = the_plan.account_kept or "pseudonymize mode keeps the account"
        kept.append({"what": "users", "rows": 1, "as": "pseudonymized, deactivated", "why": why})
    if subject is not None and subject.user_id:
        naming = find(db, Subject((subject.user_id,))).counts()
        if naming:
            kept.append({
                "what": ", ".join(naming), "rows": sum(naming.values()), "as": "the account's id",
                "why": "an id that names no one once the account is erased",
            })  # fmt: skip
    kept.append({
        "what": "erasure ledger", "rows": 1, "as": "sealed with the instance key",
        "why": f"{settings.effective_erasure_ledger}: a restore re-applies the erasure from it",
    })  # fmt: skip
    if not db.is_sqlite:
        kept.append({
            "what": "PostgreSQL row versions", "rows": None, "as": "dead tuples, WAL",
            "why": "deleted row versions stay in table files until vacuum reuses their space,"
            " and in archived WAL until it is pruned",
        })  # fmt: skip
    return kept


def _problems(receipt: Receipt) -> list[str]:
    problems = [
        f"{table}: {n} row(s) still hold the subject" for table, n in receipt.remaining.items()
    ]
    if not receipt.vectors.get("absent", True):
        problems.append(
            receipt.vectors.get("error")
            or "vectors of erased documents remain (awe knowledge gc retries owed deletes)"
        )
    if receipt.storage.get("backend") == "sqlite" and not receipt.storage.get("wal_truncated"):
        problems.append("the WAL could not be truncated (a reader held it): run awe db vacuum")
    return problems


def reapply_entries(db: Database, settings: Settings, read: erasure_ledger.Read) -> dict[str, Any]:
    """Re-apply ledger entries (read before a restore, which may put back another instance
    key): the ids re-applied, those that failed and why, and the lines that could not be read."""
    reapplied: list[str] = []
    failed: list[str] = []
    for entry in read.entries:
        subject = Subject(entry.values, entry.user_id)
        try:
            receipt = erase(db, settings, subject=subject, mode=entry.mode,
                            request_id=entry.id, actor=audit.SYSTEM)  # fmt: skip
        except AweError as exc:
            failed.append(f"{entry.id}: {exc.message}")
            continue
        (reapplied if receipt.verified else failed).append(
            entry.id if receipt.verified else f"{entry.id}: {'; '.join(receipt.problems)}"
        )
    return {"reapplied": reapplied, "failed": failed, "unreadable": read.unreadable}
