"""Carrying out an erasure's plan (awe.services.erasure_plan), in short transactions.

Order: the account first (under a lock on the admins, so the last-admin refusal comes before
any other change), then rewrites, then deletes. Run rows (a run, its steps and events) are
rewritten and deleted only under their run's lock, taken in id order like the engine's, and
only while the run is still settled: one that a resume reopened meanwhile is left, and the
second search reports it.

Pseudonymizing replaces each occurrence of the subject's values, where they stand on their own
and in any case (the search's own pattern), by ``erased-<keyed hash>``: in text, in JSON keys
and strings, and in bytes. A kept row of the audit log or security events loses its IP address
too (it is the person's). A row whose key holds the subject (a throttle's) is deleted instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, false, func, or_, select, update

from awe.ai.vectors import VectorIndex, outbox
from awe.engine.retention import settled
from awe.services.erasure_plan import (
    RUN_TABLES,
    UNSETTLED_DOCUMENT,
    Plan,
    batches,
    owned_projects,
    refuse_last_admin,
)
from awe.services.subject_search import Subject
from awe.storage.auth_models import ApiToken, AuditEntry, AuthSession, SecurityEvent
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step
from awe.storage.knowledge_models import Chunk, Document
from awe.storage.models import User
from awe.storage.schema import metadata

#: Tables deleted by their owner's delete (foreign keys cascade), never one by one.
_CASCADED = frozenset({"steps", "run_events", "chunks"})
#: Kept tables whose rows also hold where the person was: cleared with the rewrite.
_IP_TABLES = frozenset({"audit_log", "security_events"})


class Pseudonymizer:
    """Replaces the subject's values by a pseudonym in text, JSON and bytes."""

    def __init__(self, subject: Subject, pseudonym: str) -> None:
        self.pseudonym = pseudonym
        self._text = subject.pattern

    def __call__(self, value: Any) -> Any:
        """``value`` with every occurrence replaced (a JSON number that is the value becomes
        the pseudonym, a string)."""
        if isinstance(value, str):
            return self._text.sub(self.pseudonym, value)
        if isinstance(value, bytes | memoryview):
            text = bytes(value).decode("utf-8", errors="surrogateescape")
            return self._text.sub(self.pseudonym, text).encode("utf-8", errors="surrogateescape")
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.pseudonym if self._text.search(str(value)) else value
        return value


@dataclass
class Done:
    """Rows changed, per table: {"deleted": n, "pseudonymized": n} (cascades counted)."""

    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The deleted documents' ids and their chunks' ids (for the vector check).
    documents: set[str] = field(default_factory=set)
    chunks: set[str] = field(default_factory=set)

    def add(self, table: str, what: str, n: int) -> None:
        """Count ``n`` rows of ``table`` as ``what``."""
        if n:
            entry = self.tables.setdefault(table, {"deleted": 0, "pseudonymized": 0})
            entry[what] += n


def apply(
    db: Database, index: VectorIndex, the_plan: Plan, pseudonymize: Pseudonymizer, done: Done
) -> None:
    """Carry out ``the_plan``, counting into ``done`` as each transaction commits."""
    if the_plan.account is not None:
        _erase_account(db, the_plan.account, pseudonymize, done)
    by_run: dict[str, dict[str, dict[Any, set[str]]]] = {}
    for (table, key), run in the_plan.run_of.items():
        columns = the_plan.rewrites.get(table, {}).get(key)
        if columns:
            by_run.setdefault(run, {}).setdefault(table, {})[key] = columns
    for batch in batches(sorted(by_run)):
        _rewrite_runs(db, {run: by_run[run] for run in batch}, pseudonymize, done)
    for table, rows in sorted(the_plan.rewrites.items()):
        if table in RUN_TABLES:
            continue
        for part in batches(sorted(rows, key=repr)):
            with db.write() as conn:
                n = _rewrite(conn, metadata.tables[table], {k: rows[k] for k in part},
                             pseudonymize)  # fmt: skip
            done.add(table, "pseudonymized", n)
    for table, keys in sorted(the_plan.deletes.items()):
        for part in batches(sorted(keys, key=repr)):
            if table == "runs":
                _delete_runs(db, part, done)
            elif table == "documents":
                _delete_documents(db, index, part, done)
            elif table not in _CASCADED:
                source = metadata.tables[table]
                with db.write() as conn:
                    n = conn.execute(delete(source).where(keyed(source, part))).rowcount
                done.add(table, "deleted", n)


def _rewrite_runs(
    db: Database,
    runs: dict[str, dict[str, dict[Any, set[str]]]],
    pseudonymize: Pseudonymizer,
    done: Done,
) -> None:
    """Rewrite run rows under their runs' locks (id order), for the runs still settled."""
    with db.write() as conn:
        still = set(_lock_settled(conn, list(runs)))
        counts = dict.fromkeys(RUN_TABLES, 0)
        for run in sorted(still):
            for table, rows in runs[run].items():
                counts[table] += _rewrite(conn, metadata.tables[table], rows, pseudonymize)
    for table, n in counts.items():
        done.add(table, "pseudonymized", n)


def _lock_settled(conn: Connection, ids: list[str]) -> list[str]:
    """Lock these runs in id order (the engine's lock order), and say which are settled."""
    return list(
        conn.execute(
            select(Run.id).where(Run.id.in_(ids), settled()).order_by(Run.id).with_for_update()
        ).scalars()
    )


def _rewrite(
    conn: Connection, table: Table, rows: dict[Any, set[str]], pseudonymize: Pseudonymizer
) -> int:
    """Rewrite these rows' columns, a batch of keys per statement (a run may have many)."""
    changed = 0
    ordered = sorted(rows, key=repr)
    for part in batches(ordered):
        changed += _rewrite_part(conn, table, {key: rows[key] for key in part}, pseudonymize)
    return changed


def _rewrite_part(
    conn: Connection, table: Table, rows: dict[Any, set[str]], pseudonymize: Pseudonymizer
) -> int:
    keys = list(table.primary_key.columns)
    columns = sorted({c for cs in rows.values() for c in cs})
    read = select(*keys, *(table.c[c] for c in columns)).where(keyed(table, list(rows)))
    changed = 0
    for row in conn.execute(read).all():
        key = row[0] if len(keys) == 1 else tuple(row[: len(keys)])
        values = dict(zip(columns, row[len(keys) :], strict=True))
        new = {c: _fitted(table, c, pseudonymize(values[c]))
               for c in rows.get(key, ()) if values[c] is not None}  # fmt: skip
        new = {c: v for c, v in new.items() if v != values[c]}
        if new and table.name in _IP_TABLES:
            new["ip"] = None
        if new:
            conn.execute(update(table).where(keyed(table, [key])).values(**new))
            changed += 1
    return changed


def _fitted(table: Table, column: str, value: Any) -> Any:
    """``value`` cut to its column's length (a pseudonym is longer than what it replaces)."""
    length = getattr(table.c[column].type, "length", None)
    if isinstance(value, str) and length and len(value) > length:
        return value[:length]
    return value


def _delete_runs(db: Database, ids: list[Any], done: Done) -> None:
    with db.write() as conn:
        ended = _lock_settled(conn, ids)
        if not ended:
            return
        steps = _count(conn, Step, Step.run_id.in_(ended))
        events = _count(conn, RunEvent, RunEvent.run_id.in_(ended))
        n = conn.execute(delete(Run).where(Run.id.in_(ended))).rowcount
    done.add("runs", "deleted", n)
    done.add("steps", "deleted", steps)
    done.add("run_events", "deleted", events)


def _delete_documents(db: Database, index: VectorIndex, ids: list[Any], done: Done) -> None:
    with db.write() as conn:
        # Not one an ingest started meanwhile: it would write chunks after the delete.
        ready = Document.status.not_in(UNSETTLED_DOCUMENT)
        ids = list(conn.execute(select(Document.id).where(Document.id.in_(ids), ready)).scalars())
        if not ids:
            return
        chunks = list(conn.execute(select(Chunk.id).where(Chunk.document_id.in_(ids))).scalars())
        n = conn.execute(delete(Document).where(Document.id.in_(ids))).rowcount
        outbox.enqueue(conn, index, document_ids=list(ids))
    done.add("documents", "deleted", n)
    done.add("chunks", "deleted", len(chunks))
    done.documents.update(ids)
    done.chunks.update(chunks)


def _erase_account(
    db: Database, account: tuple[str, bool], pseudonymize: Pseudonymizer, done: Done
) -> None:
    user_id, deleted = account
    with db.write() as conn:
        refuse_last_admin(conn, user_id, lock=True)
        deleted = deleted and not owned_projects(conn, user_id)  # one made since the plan
        sessions = conn.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
        tokens = conn.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
        # Where they were: the addresses of what they did and of what happened to them.
        conn.execute(update(AuditEntry).where(AuditEntry.actor_id == user_id).values(ip=None))
        conn.execute(update(SecurityEvent).where(SecurityEvent.user_id == user_id).values(ip=None))
        if deleted:
            n = conn.execute(delete(User).where(User.id == user_id)).rowcount
        else:
            n = conn.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    # From the id, not the subject: unique even if they come back and go again.
                    email=f"erased-{user_id}@erased.invalid",
                    display_name="",
                    password_hash=None,
                    is_active=False,
                )
            ).rowcount
    done.add("users", "deleted" if deleted else "pseudonymized", n)
    done.add("auth_sessions", "deleted", sessions.rowcount)
    done.add("api_tokens", "deleted", tokens.rowcount)


def _count(conn: Connection, model: Any, condition: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(model).where(condition)).scalar_one())


def keyed(table: Table, keys: list[Any]) -> Any:
    """Rows of ``table`` whose primary key is one of ``keys`` (tuples for composite keys)."""
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return columns[0].in_(keys)
    if not keys:
        return false()
    return or_(*(and_(*(c == v for c, v in zip(columns, key, strict=True))) for key in keys))
