"""What an erasure does to each row that holds the subject, decided before anything changes.

Every table is covered by one rule, the default included (so a table added later is erased
too):

- **deleted in either mode**: documents (their bytes cannot be rewritten in place, and their
  vectors were computed from the subject's text; chunks go with them, and vectors through the
  outbox), failed-login throttles, and the account's sessions and API tokens;
- **kept, pseudonymized in either mode** (:data:`KEPT`, each with why): the audit trail, security
  events, the record of operational commands, projects and stored workflows;
- **the account** (the one with exactly the subject's address, or the one account a value
  found): deleted in delete mode unless projects name it as owner, otherwise its e-mail becomes
  a pseudonym, its name and password go, and it is deactivated. Another account whose row
  mentions the subject (in its display name) is only rewritten;
- **a run's steps and events** belong to their run: delete mode deletes the run (and with it
  every step and event), pseudonymize rewrites them in place;
- **everything else** is deleted in delete mode and rewritten in pseudonymize mode.

Rows are found by the subject's values only, never by the account's id: a row that names the
account by id (an audit entry's actor, a project's owner, a secret's last editor) is not the
person's data, and that id names no one once the account is erased.

Refused before any change (Conflict): a value found in ids or keys (it names things, not a
person), two accounts holding the value, the last active admin, a run that is not settled
(open, a step still running, an open parent or child), a document still being ingested.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, not_, select

from awe.core.errors import Conflict
from awe.engine.retention import settled
from awe.services.subject_search import Found
from awe.storage.auth_models import ApiToken, AuthSession
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step
from awe.storage.knowledge_models import Chunk, Document
from awe.storage.models import Project, User
from awe.storage.schema import metadata

#: Rows read or changed per statement and transaction (short transactions).
BATCH = 200
#: Tables whose rows are kept in either mode, the subject replaced by its pseudonym; and why.
KEPT = {
    "audit_log": "the audit trail is kept for accountability",
    "security_events": "security events are kept to investigate attacks",
    "script_executions": "the record of operational commands is kept for accountability",
    "projects": "deleting a project would delete everything in it",
    "workflows": "runs and schedules pin workflow versions; the workflow keeps working",
}
ALWAYS_DELETED = frozenset({"documents", "auth_throttle", "auth_sessions", "api_tokens"})
#: Rows that belong to a row of another table: (owner table, the column naming it).
OWNED = {
    "steps": ("runs", "run_id"),
    "run_events": ("runs", "run_id"),
    "chunks": ("documents", "document_id"),
}
#: Run rows and the rows that belong to runs: rewritten under their run's lock.
RUN_TABLES = ("runs", "steps", "run_events")
#: Key columns where the subject may legitimately be: a throttle's key is "account:<email>".
_PERSONAL_KEYS = frozenset({("auth_throttle", "key")})
#: Document states an ingest is still writing in.
UNSETTLED_DOCUMENT = ("pending", "ingesting")
#: Columns named like ids that hold names (an audit entry's target: a workflow@version, a
#: schedule or secret name): a value found there is data, not a key.
_NAMES = frozenset({("audit_log", "target_id")})


@dataclass
class Plan:
    """Rows to delete, rows to rewrite (with the columns to rewrite), the account."""

    deletes: dict[str, set[Any]] = field(default_factory=dict)
    rewrites: dict[str, dict[Any, set[str]]] = field(default_factory=dict)
    #: For rewritten steps and events: the run each belongs to (key -> run id).
    run_of: dict[tuple[str, Any], str] = field(default_factory=dict)
    #: The account: (id, whether its row is deleted), when the subject has one.
    account: tuple[str, bool] | None = None
    #: Why an account that delete mode would delete is kept.
    account_kept: str | None = None
    #: Runs and documents left for a later erasure (not settled), when not strict.
    skipped: list[str] = field(default_factory=list)
    #: Rows that go with the deleted ones (steps, events, chunks, sessions, tokens).
    cascaded: dict[str, int] = field(default_factory=dict)

    def delete(self, table: str, keys: Iterable[Any]) -> None:
        """Add rows to delete."""
        self.deletes.setdefault(table, set()).update(keys)

    def rewrite(self, table: str, key: Any, columns: Iterable[str]) -> None:
        """Add a row's columns to rewrite."""
        self.rewrites.setdefault(table, {}).setdefault(key, set()).update(columns)

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per table it would delete and pseudonymize (cascades not counted)."""
        tables: dict[str, dict[str, int]] = {}
        for table, keys in self.deletes.items():
            tables.setdefault(table, {"deleted": 0, "pseudonymized": 0})["deleted"] += len(keys)
        for table, rows in self.rewrites.items():
            entry = tables.setdefault(table, {"deleted": 0, "pseudonymized": 0})
            entry["pseudonymized"] += len(rows)
        if self.account is not None:
            entry = tables.setdefault("users", {"deleted": 0, "pseudonymized": 0})
            entry["deleted" if self.account[1] else "pseudonymized"] += 1
        for table, n in self.cascaded.items():
            if n:
                tables.setdefault(table, {"deleted": 0, "pseudonymized": 0})["deleted"] += n
        return dict(sorted(tables.items()))

    @property
    def rows(self) -> int:
        """Rows it changes in all (what ``--expect`` must name), but for the account's sessions
        and tokens: a log-in between the dry run and the erasure must not refuse it."""
        return sum(
            n
            for table, entry in self.counts().items()
            if table not in ("auth_sessions", "api_tokens")
            for n in entry.values()
        )


def plan(
    db: Database, account: str | None, found: Found, *, mode: str, strict: bool = True
) -> Plan:
    """What to do with each row ``found`` for the subject whose account is ``account``.
    Conflict for the refusals above; with ``strict`` False (a later round, after changes were
    made), rows of runs and documents that are not settled are left out instead."""
    result = Plan()
    if strict:
        _refuse_keys(found)
    for table, columns in found.rows.items():
        keys = {key for matched in columns.values() for key in matched}
        if table == "users":
            for column, matched in columns.items():  # another account's name mentions them
                for key in matched:
                    if key != account:
                        result.rewrite(table, key, [column])
            continue
        if table in OWNED and (mode == "delete" or table == "chunks"):
            owner, column = OWNED[table]
            result.delete(owner, _owners(db, table, column, keys))
        elif table in ALWAYS_DELETED or (mode == "delete" and table not in KEPT):
            result.delete(table, keys)
        else:
            for column, matched in columns.items():
                for key in matched:
                    result.rewrite(table, key, [column])
    for table, deleted in result.deletes.items():
        for key in deleted:
            result.rewrites.get(table, {}).pop(key, None)
    _map_runs(db, result)
    if account is not None:
        with db.read() as conn:
            refuse_last_admin(conn, account, lock=False)
            owns = owned_projects(conn, account)
        if mode == "delete" and owns:
            result.account_kept = f"it owns {owns} project(s), which name it as their owner"
        result.account = (account, mode == "delete" and not owns)
    _unsettled(db, result, strict=strict)
    result.cascaded = _cascades(db, result)
    return result


def _cascades(db: Database, result: Plan) -> dict[str, int]:
    """How many rows go with the planned deletes."""
    owners = {
        "steps": (Step.run_id, result.deletes.get("runs", set())),
        "run_events": (RunEvent.run_id, result.deletes.get("runs", set())),
        "chunks": (Chunk.document_id, result.deletes.get("documents", set())),
    }
    counts = dict.fromkeys(owners, 0)
    with db.read() as conn:
        for table, (column, ids) in owners.items():
            for batch in batches(sorted(ids)):
                counts[table] += int(conn.execute(
                    select(func.count()).where(column.in_(batch))).scalar_one())  # fmt: skip
        if result.account is not None:
            user_id = result.account[0]
            for model in (AuthSession, ApiToken):
                counts[model.__tablename__] = int(conn.execute(select(func.count()).select_from(
                    model).where(model.user_id == user_id)).scalar_one())  # fmt: skip
    return counts


def account_of(found: Found, known: str | None) -> str | None:
    """The subject's account: ``known`` (the exact address's, or the id given), else the one
    account whose row holds the value; Conflict when the value is in two or more."""
    if known is not None:
        return known
    ids = {str(key) for matched in found.rows.get("users", {}).values() for key in matched}
    if len(ids) > 1:
        raise Conflict(
            f"{len(ids)} accounts hold this value: an erasure is of one person; name them"
            " by --email or --user"
        )
    return next(iter(ids), None)


def _refuse_keys(found: Found) -> None:
    """Conflict when the value is in an id or key column: it names things, not one person."""
    for table in metadata.sorted_tables:
        matched = found.rows.get(table.name, {})
        for name in matched:
            column = table.c[name]
            is_key = column.primary_key or column.foreign_keys or name.endswith("_id")
            if is_key and (table.name, name) not in _PERSONAL_KEYS | _NAMES:
                raise Conflict(
                    f"the value occurs in {table.name}.{name}, which holds ids or keys: it"
                    " names things, not one person; give a longer value, or --email/--user"
                )


def refuse_last_admin(conn: Connection, user_id: str, *, lock: bool) -> None:
    """Conflict when the account is the only active admin (erasing it would lock everyone
    out); with ``lock``, the admins' rows are locked, so two erasures cannot both pass."""
    admins = select(User.id).where(User.role == "admin", User.is_active.is_(True)).order_by(User.id)
    if set(conn.execute(admins.with_for_update() if lock else admins).scalars()) == {user_id}:
        raise Conflict(
            "the subject is the last active admin: make another admin first (awe admin users),"
            " then erase"
        )


def owned_projects(conn: Connection, user_id: str) -> int:
    """How many projects name the account as their owner."""
    statement = select(func.count()).select_from(Project).where(Project.owner_id == user_id)
    return int(conn.execute(statement).scalar_one())


def _owners(db: Database, table: str, column: str, keys: set[Any]) -> set[Any]:
    return {owner for _, owner in _owner_pairs(db, table, column, keys)}


def _owner_pairs(
    db: Database, table: str, column: str, keys: set[Any]
) -> Iterator[tuple[Any, Any]]:
    source = metadata.tables[table]
    (key_column,) = source.primary_key.columns
    for batch in batches(sorted(keys)):
        with db.read() as conn:
            for row in conn.execute(
                select(key_column, source.c[column]).where(key_column.in_(batch))
            ):
                yield row[0], row[1]


def _map_runs(db: Database, result: Plan) -> None:
    for table in ("steps", "run_events"):
        for key, run in _owner_pairs(db, table, "run_id", set(result.rewrites.get(table, {}))):
            result.run_of[(table, key)] = run
    for key in result.rewrites.get("runs", {}):
        result.run_of[("runs", key)] = key


def _unsettled(db: Database, result: Plan, *, strict: bool) -> None:
    """Refuse (or, not strict, leave out) what a worker may still change: runs that are not
    settled, documents still being ingested."""
    runs = set(result.deletes.get("runs", set())) | set(result.run_of.values())
    waiting: list[str] = []
    for batch in batches(sorted(runs)):
        with db.read() as conn:
            waiting += conn.execute(
                select(Run.id).where(Run.id.in_(batch), not_(settled()))
            ).scalars()
    documents: list[str] = []
    for batch in batches(sorted(result.deletes.get("documents", set()))):
        with db.read() as conn:
            documents += conn.execute(
                select(Document.id).where(
                    Document.id.in_(batch), Document.status.in_(UNSETTLED_DOCUMENT)
                )
            ).scalars()
    if not waiting and not documents:
        return
    if strict:
        shown = ", ".join(sorted(waiting + documents)[:5])
        raise Conflict(
            f"{len(waiting)} run(s) and {len(documents)} document(s) holding the subject are not"
            f" settled ({shown}): a run still open, with a step still running or an open parent"
            " or child, or a document still being ingested; cancel (awe runs cancel ID) or let"
            " them finish, then erase; nothing was changed"
        )
    result.skipped = sorted(waiting + documents)
    gone = set(waiting)
    result.deletes.get("runs", set()).difference_update(gone)
    result.deletes.get("documents", set()).difference_update(documents)
    for (table, key), run in list(result.run_of.items()):
        if run in gone:
            result.rewrites.get(table, {}).pop(key, None)
            del result.run_of[(table, key)]


def batches(items: list[Any]) -> Iterator[list[Any]]:
    """``items`` in lists of :data:`BATCH`."""
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
