"""Erasure of one data subject (``awe erase``, ``POST /api/v1/admin/erasures``): find them
everywhere (awe.services.subject_search), delete or pseudonymize each row by its table's rule
(awe.services.erasure_plan, carried out by awe.services.erasure_rows), then prove it: a second
search finds nothing, the vectors of the deleted documents are gone from the SQL rows and from
Qdrant (by filter count and by id), and on SQLite the file and its WAL no longer hold the
deleted bytes. A receipt says what was done, what was kept and why, and when the last backup
holding a copy expires; the audit entry and the receipt hold the subject's keyed hash only; the
erasure ledger lets a restore re-apply it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from awe.ai.vectors import VectorIndex, choose_index, outbox
from awe.ai.vectors.qdrant import QdrantIndex
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.errors import AweError, Conflict, NotFound, ValidationFailed
from awe.core.ids import new_id
from awe.ops import backup, erasure_ledger, erasure_storage
from awe.services import audit, erasure_plan, erasure_rows
from awe.services.audit import Actor
from awe.services.erasure_plan import KEPT, Plan
from awe.services.erasure_rows import Done, Pseudonymizer
from awe.services.subject_search import Found, Subject, find, with_placeholders
from awe.services.tokens import operator_actor
from awe.storage.database import Database
from awe.storage.knowledge_models import Chunk
from awe.storage.models import User

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
    #: Rows the plan changes in all (what --expect names for a --value erasure).
    rows: int = 0
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
    #: The account a ``value`` found (so its dry run says whose it is), else None.
    account: str | None = None
    #: Runs and documents left out because they became unsettled during the erasure.
    skipped: list[str] = field(default_factory=list)
    #: Things worth knowing that are not failures.
    notes: list[str] = field(default_factory=list)

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
    expect: int | None = None,
    actor: Actor | None = None,
    subject: Subject | None = None,
    request_id: str | None = None,
) -> Receipt:
    """Erase the subject (named by one of ``email``, ``user``, ``value``, or given as
    ``subject`` when the ledger is re-applied) and verify it. A ``value`` erasure needs
    ``expect``: the rows its dry run counts (free text may match more than one person).
    ValidationFailed for a bad request; Conflict, with nothing changed, for what
    awe.services.erasure_plan refuses and for an ``expect`` that is not the plan's count."""
    if mode not in MODES:
        raise ValidationFailed(f"--mode {mode!r} is not one of: {', '.join(MODES)}")
    reapplied = subject is not None
    named = subject or Subject.of(db, email=email, user=user, value=value)
    subject, found = _with_account(db, settings, named)
    searched = with_placeholders(subject, settings)
    if found is None:  # the subject changed (an account joined it): search for all of it
        found = find(db, searched)
    account = subject.user_id
    the_plan = erasure_plan.plan(db, account, found, mode=mode)
    if value and not reapplied and not dry_run and expect is None:
        raise ValidationFailed(
            f"--value needs --expect {the_plan.rows}: the rows its dry run counts (free text"
            " may match more than one person: check the dry run first)"
        )
    if expect is not None and expect != the_plan.rows:
        raise Conflict(
            f"the erasure would change {the_plan.rows} row(s), not the {expect} expected: run"
            " the dry run again and check what it finds; nothing was changed"
        )
    tag = subject.tag(settings)
    receipt = Receipt(
        request_id=request_id or new_id(),
        subject=tag,
        mode=mode,
        dry_run=dry_run,
        at=utcnow(),
        found=found.counts(),
        rows=the_plan.rows,
        # An account a value found: shown, so a dry run says whose it would erase.
        account=account if subject.kind == "value" else None,
    )
    if not receipt.found:
        receipt.notes.append("nothing holds this subject: check how it is spelled")
    who = actor or operator_actor()
    if dry_run:
        receipt.tables = the_plan.counts()
        receipt.retained = _retained(the_plan, receipt.tables, settings, db)
        _audit(db, who, receipt, completed=True)
        return receipt
    if not reapplied:
        # Before any change: a restore re-applies the erasure even if this one stops midway.
        entry = erasure_ledger.Entry(receipt.request_id, receipt.at, mode, tag,
                                     subject.values, subject.user_id, subject.kind)  # fmt: skip
        erasure_ledger.append(settings, entry)
    done = Done()
    pseudonymize = Pseudonymizer(searched, f"erased-{tag}")
    index = choose_index(db, settings)
    completed = False
    try:
        _erase_all(db, index, searched, the_plan, mode, pseudonymize, done, receipt)
        completed = True
    finally:
        receipt.tables = done.tables
        _audit(db, who, receipt, completed=completed)
    receipt.vectors = _vectors(db, index, done)
    receipt.storage = erasure_storage.settle_sqlite(db, searched.values)
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
    """Apply the plan, search again, and erase what a worker wrote meanwhile (a few rounds;
    those leave out what is not settled rather than refuse: changes were made already)."""
    for round_number in range(PASSES):
        erasure_rows.apply(db, index, the_plan, pseudonymize, done)
        receipt.skipped += [k for k in the_plan.skipped if k not in receipt.skipped]
        remaining = find(db, subject)
        receipt.remaining = remaining.counts()
        if not receipt.remaining or round_number == PASSES - 1:
            return
        # The account was erased in the first round: a users row found now is another's.
        the_plan = erasure_plan.plan(db, None, remaining, mode=mode, strict=False)


def _with_account(
    db: Database, settings: Settings, subject: Subject
) -> tuple[Subject, Found | None]:
    """The subject with their account: a value that exactly one account holds names that
    account, whose address is then looked for too (Conflict when two hold it); an e-mail or id
    names its account, or none (another account merely mentioning the address is not theirs).
    With the rows holding the subject when that search was made and still stands, else None."""
    if subject.user_id is not None or subject.kind == "user":
        return subject, None
    if subject.kind == "email":  # looked up again: a restore may have brought the account back
        with db.read() as conn:
            again = conn.execute(
                select(User.id).where(User.email == subject.values[0].lower())
            ).scalar_one_or_none()
        return (subject if again is None else replace(subject, user_id=again)), None
    found = find(db, with_placeholders(subject, settings))
    account = erasure_plan.account_of(found, None)
    if account is None:
        return subject, found
    with db.read() as conn:
        email = conn.execute(select(User.email).where(User.id == account)).scalar_one()
    return subject.with_account(email, account), None


def _audit(db: Database, who: Actor, receipt: Receipt, *, completed: bool) -> None:
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
            "completed": completed,
            "found": receipt.found,
            "tables": receipt.tables,
        },
    )


def _vectors(db: Database, index: VectorIndex, done: Done) -> dict[str, Any]:
    """The deleted documents' vectors, looked for in the SQL rows (by document and by chunk id)
    and, for Qdrant, in its collections (after doing the owed deletes now)."""
    documents, chunks = sorted(done.documents), sorted(done.chunks)
    result: dict[str, Any] = {"backend": index.name, "documents": len(documents),
                              "chunks": len(chunks)}  # fmt: skip
    with db.read() as conn:
        result["rows_by_document"] = _in(conn, Chunk.document_id, documents)
        result["rows_by_id"] = _in(conn, Chunk.id, chunks)
    if isinstance(index, QdrantIndex) and documents:
        outbox.drain(db, index, seconds=30.0)
        result["owed_deletes"] = outbox.owed(db)
        try:
            result["points_by_filter"] = sum(index.count(d) for d in documents)
            result["points_by_id"] = index.present(chunks)
        except Exception as exc:  # noqa: BLE001 - any client error: not verified, and why
            result["error"] = f"Qdrant did not answer: {type(exc).__name__}: {str(exc)[:200]}"
    counted = [v for k, v in result.items() if k.startswith(("rows_", "points_"))]
    result["absent"] = "error" not in result and not any(counted)
    return result


def _in(conn: Any, column: Any, values: list[str]) -> int:
    return sum(
        int(conn.execute(select(func.count()).where(column.in_(part))).scalar_one())
        for part in erasure_plan.batches(values)
    )


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
    if receipt.skipped:
        problems.append(
            f"{len(receipt.skipped)} run(s) or document(s) became unsettled during the erasure"
            f" and were left ({', '.join(receipt.skipped[:5])}): erase again once they settle"
            " (awe erase --from-ledger ID)"
        )
    if not receipt.vectors.get("absent", True):
        problems.append(
            receipt.vectors.get("error")
            or "vectors of erased documents remain (awe knowledge gc retries owed deletes)"
        )
    if receipt.storage.get("backend") == "sqlite":
        if not receipt.storage.get("wal_truncated"):
            problems.append("the WAL could not be truncated (a reader held it): run awe db vacuum")
        if receipt.storage.get("vacuum_error"):
            problems.append(
                f"the file holds the value in free space and could not be rebuilt"
                f" ({receipt.storage['vacuum_error']}): run awe db vacuum when it is quiet"
            )
        elif receipt.storage.get("file_holds_value"):
            problems.append(
                "the database file still holds the value after it was rebuilt: a row the"
                " search reads differently holds it; look with awe pii find --value"
            )
    return problems


def _subject_of(entry: erasure_ledger.Entry) -> Subject:
    return Subject(entry.values, entry.user_id, kind=entry.kind)


def from_ledger(
    db: Database,
    settings: Settings,
    request_id: str,
    *,
    dry_run: bool = False,
    actor: Actor | None = None,
) -> Receipt:
    """Run a ledger entry's erasure again (one a restore could not re-apply), by its id."""
    read = erasure_ledger.read(settings)
    entry = next((e for e in read.entries if e.id == request_id), None)
    if entry is None:
        raise NotFound(
            f"no erasure {request_id[:40]} in {settings.effective_erasure_ledger}"
            + (f" ({len(read.unreadable)} line(s) there could not be read)" if read.unreadable
               else "")
        )  # fmt: skip
    subject = _subject_of(entry)
    if not dry_run:  # a restore of a backup taken before this run must re-apply it again
        erasure_ledger.append(settings, replace(entry, at=utcnow()))
    return erase(db, settings, subject=subject, mode=entry.mode, request_id=entry.id,
                 dry_run=dry_run, actor=actor)  # fmt: skip


def reapply_entries(db: Database, settings: Settings, read: erasure_ledger.Read) -> dict[str, Any]:
    """Re-apply ledger entries (read before a restore, which may put back another instance
    key): the ids re-applied, those that failed and why, and the lines that could not be read."""
    reapplied: list[str] = []
    failed: list[str] = []
    for entry in read.entries:
        try:
            receipt = erase(db, settings, subject=_subject_of(entry), mode=entry.mode,
                            request_id=entry.id, actor=audit.SYSTEM)  # fmt: skip
        except AweError as exc:
            failed.append(f"{entry.id}: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - the restore is done: report, go on
            failed.append(f"{entry.id}: {type(exc).__name__}: {str(exc)[:200]}")
        else:
            if receipt.verified:
                reapplied.append(entry.id)
            else:
                failed.append(f"{entry.id}: {'; '.join(receipt.problems)}")
    return {"reapplied": reapplied, "failed": failed, "unreadable": read.unreadable}
