"""What an erasure does to each row that holds the subject, and doing it.

Every table is covered by one rule, the default included (so a table added later is erased
too):

- **deleted in either mode**: documents (their bytes cannot be rewritten in place, and their
  vectors were computed from the subject's text; chunks go with them, and vectors through the
  outbox), credentials (sessions, API tokens) and failed-login throttles;
- **kept, pseudonymized in either mode** (:data:`KEPT`, each with why): the audit trail, security
  events, the record of operational commands, projects and stored workflows;
- **the account**: deleted in delete mode unless projects name it as owner, otherwise its e-mail
  becomes a pseudonym, its name and password go, and it is deactivated;
- **a run's steps and events** belong to their run: delete mode deletes the run (and with it
  every step and event), pseudonymize rewrites them in place;
- **everything else** is deleted in delete mode and rewritten in pseudonymize mode.

Pseudonymizing replaces each occurrence of the subject's values (in any case) by
``erased-<keyed hash>``, in text, inside JSON (keys too) and in bytes; a string in which the
value still matches after that (a case rule ``re`` and ``casefold`` disagree on) is replaced
whole. A row whose primary key holds the subject is deleted (a key cannot be rewritten).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    delete,
    false,
    func,
    not_,
    or_,
    select,
    update,
)

from awe.ai.vectors import VectorIndex, outbox
from awe.core.errors import Conflict
from awe.engine.retention import settled
from awe.services.subject_search import Found, Subject, searched_columns
from awe.storage.auth_models import ApiToken, AuthSession
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step
from awe.storage.knowledge_models import Chunk, Document
from awe.storage.models import Project, User
from awe.storage.schema import metadata

#: Rows changed per transaction (short transactions: workers keep going meanwhile).
BATCH = 200
#: Tables whose rows are kept in either mode, the subject replaced by its pseudonym; and why.
KEPT = {
    "audit_log": "the audit trail is kept for accountability",
    "security_events": "security events are kept to investigate attacks",
    "script_executions": "the record of operational commands is kept for accountability",
    "projects": "deleting a project would delete everything in it",
    "workflows": "runs and schedules pin workflow versions; the workflow keeps working",
}
ALWAYS_DELETED = frozenset({"documents", "auth_sessions", "api_tokens", "auth_throttle"})
#: Rows that belong to a row of another table: (owner table, the column naming it).
OWNED = {
    "steps": ("runs", "run_id"),
    "run_events": ("runs", "run_id"),
    "chunks": ("documents", "document_id"),
}
#: Tables deleted by their owner's delete (foreign keys cascade), never one by one.
_CASCADED = frozenset({"steps", "run_events", "chunks"})


@dataclass
class Plan:
    """Rows to delete and rows to rewrite (with the columns to rewrite), per table."""

    deletes: dict[str, set[Any]] = field(default_factory=dict)
    rewrites: dict[str, dict[Any, set[str]]] = field(default_factory=dict)
    #: The account: (id, whether its row is deleted), when the subject has one.
    account: tuple[str, bool] | None = None
    #: Why an account that delete mode would delete is kept.
    account_kept: str | None = None

    def delete(self, table: str, keys: Iterable[Any]) -> None:
        """Add rows to delete."""
        self.deletes.setdefault(table, set()).update(keys)

    def rewrite(self, table: str, key: Any, columns: Iterable[str]) -> None:
        """Add a row's columns to rewrite."""
        self.rewrites.setdefault(table, {}).setdefault(key, set()).update(columns)


def plan(db: Database, subject: Subject, found: Found, *, mode: str) -> Plan:
    """What to do with each row ``found``; Conflict (nothing changed) when more than one
    account holds the subject or a run it touches is still open."""
    result = Plan()
    keys_of = {t.name: [c.name for c in keys] for t, keys, _ in searched_columns()}
    account = _account(db, subject, found)
    for table, columns in found.rows.items():
        if table == "users":
            continue
        keys = {key for matched in columns.values() for key in matched}
        if table in OWNED and (mode == "delete" or table == "chunks"):
            owner, column = OWNED[table]
            result.delete(owner, _owners(db, table, column, keys))
            continue
        key_columns = set(keys_of[table])
        if table in ALWAYS_DELETED or (mode == "delete" and table not in KEPT):
            result.delete(table, keys)
            continue
        for column, matched in columns.items():
            for key in matched:
                if column in key_columns:
                    result.delete(table, [key])  # a key cannot be rewritten
                else:
                    result.rewrite(table, key, [column])
    for table, deleted in result.deletes.items():
        for key in deleted:
            result.rewrites.get(table, {}).pop(key, None)
    if account is not None:
        with db.read() as conn:
            _refuse_last_admin(conn, account, lock=False)
        owns = _owned_projects(db, account)
        if mode == "delete" and owns:
            result.account_kept = f"it owns {owns} project(s), which name it as their owner"
        result.account = (account, mode == "delete" and not owns)
    _refuse_open_runs(db, result)
    return result


def _account(db: Database, subject: Subject, found: Found) -> str | None:
    ids = {str(key) for matched in found.rows.get("users", {}).values() for key in matched}
    if subject.user_id:
        ids.add(subject.user_id)
    if len(ids) > 1:
        raise Conflict(
            f"{len(ids)} accounts hold this value: an erasure is of one person; name them"
            " by --email or --user"
        )
    return next(iter(ids), None)


def _refuse_last_admin(conn: Connection, user_id: str, *, lock: bool) -> None:
    """Conflict when the account is the only active admin (erasing it would lock everyone
    out); with ``lock``, the admins' rows are locked, so two erasures cannot both pass."""
    admins = select(User.id).where(User.role == "admin", User.is_active.is_(True))
    if set(conn.execute(admins.with_for_update() if lock else admins).scalars()) == {user_id}:
        raise Conflict(
            "the subject is the last active admin: make another admin first (awe admin users),"
            " then erase again"
        )


def _owned_projects(db: Database, user_id: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(Project).where(Project.owner_id == user_id)
            ).scalar_one()
        )


def _owners(db: Database, table: str, column: str, keys: set[Any]) -> set[Any]:
    source = metadata.tables[table]
    owners: set[Any] = set()
    for batch in _batches(sorted(keys)):
        with db.read() as conn:
            owners.update(
                conn.execute(select(source.c[column]).where(_keyed(source, batch))).scalars()
            )
    return owners


def _refuse_open_runs(db: Database, result: Plan) -> None:
    runs = set(result.deletes.get("runs", set())) | set(result.rewrites.get("runs", {}))
    for table in ("steps", "run_events"):
        runs |= _owners(db, table, "run_id", set(result.rewrites.get(table, {})))
    open_runs: list[str] = []
    for batch in _batches(sorted(runs)):
        with db.read() as conn:
            open_runs += conn.execute(
                select(Run.id).where(Run.id.in_(batch), not_(settled()))
            ).scalars()
    if open_runs:
        shown = ", ".join(sorted(open_runs)[:5])
        raise Conflict(
            f"{len(open_runs)} run(s) holding the subject are not settled ({shown}): still open,"
            " with a step still running, or with an open parent or child run; cancel them (awe"
            " runs cancel ID) or let them finish, then erase; nothing was changed"
        )


class Pseudonymizer:
    """Replaces the subject's values by a pseudonym in text, JSON and bytes."""

    def __init__(self, subject: Subject, pseudonym: str) -> None:
        self.subject = subject
        self.pseudonym = pseudonym
        ordered = sorted(subject.values, key=len, reverse=True)
        self._text = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)
        self._bytes = re.compile(b"|".join(re.escape(v.encode()) for v in ordered), re.IGNORECASE)

    def __call__(self, value: Any) -> Any:
        """``value`` with every occurrence replaced."""
        if isinstance(value, str):
            replaced = self._text.sub(self.pseudonym, value)
            return self.pseudonym if self.subject.matches(replaced) else replaced
        if isinstance(value, bytes | memoryview):
            replaced_bytes = self._bytes.sub(self.pseudonym.encode(), bytes(value))
            return (
                self.pseudonym.encode() if self.subject.matches(replaced_bytes) else replaced_bytes
            )
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
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
    """Carry out ``the_plan`` in short transactions, counting into ``done`` as each commits."""
    for table, rows in sorted(the_plan.rewrites.items()):
        for batch in _batches(sorted(rows, key=repr)):
            with db.write() as conn:
                n = _rewrite(
                    conn, metadata.tables[table], {k: rows[k] for k in batch}, pseudonymize
                )
            done.add(table, "pseudonymized", n)
    for table, keys in sorted(the_plan.deletes.items()):
        for batch in _batches(sorted(keys, key=repr)):
            if table == "runs":
                _delete_runs(db, batch, done)
            elif table == "documents":
                _delete_documents(db, index, batch, done)
            elif table not in _CASCADED:
                with db.write() as conn:
                    n = conn.execute(delete(metadata.tables[table]).where(
                        _keyed(metadata.tables[table], batch))).rowcount  # fmt: skip
                done.add(table, "deleted", n)
    if the_plan.account is not None:
        _erase_account(db, the_plan.account, pseudonymize, done)


def _rewrite(
    conn: Connection, table: Table, rows: dict[Any, set[str]], pseudonymize: Pseudonymizer
) -> int:
    keys = list(table.primary_key.columns)
    columns = sorted({c for cs in rows.values() for c in cs})
    read = select(*keys, *(table.c[c] for c in columns)).where(_keyed(table, list(rows)))
    changed = 0
    for row in conn.execute(read).all():
        key = row[0] if len(keys) == 1 else tuple(row[: len(keys)])
        values = dict(zip(columns, row[len(keys) :], strict=True))
        new = {c: pseudonymize(values[c]) for c in rows.get(key, ()) if values[c] is not None}
        new = {c: v for c, v in new.items() if v != values[c]}
        if new:
            conn.execute(update(table).where(_keyed(table, [key])).values(**new))
            changed += 1
    return changed


def _delete_runs(db: Database, ids: list[Any], done: Done) -> None:
    with db.write() as conn:
        # Locked in id order (the engine's lock order), and only runs that are settled.
        ended = list(
            conn.execute(
                select(Run.id).where(Run.id.in_(ids), settled()).order_by(Run.id).with_for_update()
            ).scalars()
        )
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
        _refuse_last_admin(conn, user_id, lock=True)
        sessions = conn.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
        tokens = conn.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
        if deleted:
            n = conn.execute(delete(User).where(User.id == user_id)).rowcount
        else:
            n = conn.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    email=f"{pseudonymize.pseudonym}@erased.invalid",
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


def _keyed(table: Table, keys: list[Any]) -> Any:
    """Rows of ``table`` whose primary key is one of ``keys`` (tuples for composite keys)."""
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return columns[0].in_(keys)
    if not keys:
        return false()
    return or_(*(and_(*(c == v for c, v in zip(columns, key, strict=True))) for key in keys))


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
