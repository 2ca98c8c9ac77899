"""Where a data subject appears: every text, JSON and byte column of every table, sealed ones
opened (their column types do that as rows are read), read in pages by primary key.

The tables are not listed by hand: whatever the schema holds (a table added later included) is
searched, so a right-of-access answer, and the erasure that will build on it, cannot forget a
table. A match is a case-insensitive occurrence of any of the subject's values (or their account's
id) in the column's text (JSON as its text, bytes decoded as UTF-8).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, LargeBinary, String, Table, Text, and_, or_, select
from sqlalchemy.types import JSON, TypeDecorator

from awe.core.config import Settings
from awe.core.crypto import instance_key
from awe.core.errors import NotFound, ValidationFailed
from awe.services import audit
from awe.services.audit import Actor
from awe.services.tokens import operator_actor
from awe.storage.database import Database
from awe.storage.models import User
from awe.storage.schema import metadata

#: Rows read per query (tables with byte columns, documents' contents: a few at a time).
PAGE = 500
BYTES_PAGE = 8
#: Tables with nothing a person put there (keys, leases, bookkeeping).
SKIPPED = frozenset({"alembic_version", "leases", "instance_state", "queues", "workers"})


@dataclass(frozen=True)
class Subject:
    """What identifies a person: the values to look for (an e-mail, a name…), and the id of
    their account when they have one."""

    values: tuple[str, ...]
    #: Their account's id: rows that name it (tokens, sessions, the audit's actor) are theirs.
    user_id: str | None = None

    @classmethod
    def of(
        cls,
        db: Database,
        *,
        email: str | None = None,
        user: str | None = None,
        value: str | None = None,
    ) -> Subject:
        """One of ``email`` (its account, if any, is theirs), ``user`` (an account's id: its
        e-mail is looked for too) or ``value``; ValidationFailed unless exactly one is given,
        or it is too short to mean one person."""
        given = [x for x in (email, user, value) if x]
        if len(given) != 1:
            raise ValidationFailed("name exactly one of --email, --user or --value")
        needle = given[0].strip()
        if len(needle) < 4:
            raise ValidationFailed(
                f"{needle!r} is too short to identify one person: give 4 characters or more"
            )
        if email is not None and "@" not in needle:
            raise ValidationFailed(f"--email {needle!r} is not an e-mail address")
        if user is not None:
            with db.read() as conn:
                row = conn.execute(select(User.email).where(User.id == needle)).one_or_none()
            if row is None:
                raise NotFound(f"no user {needle} (awe admin users, or GET /api/v1/users)")
            # The person's name in receipts and audit: their e-mail.
            return cls((row.email,), user_id=needle)
        if email is not None:
            with db.read() as conn:
                account = conn.execute(
                    select(User.id).where(User.email == needle.lower())
                ).scalar_one_or_none()
            return cls((needle,), user_id=account)
        return cls((needle,))

    @property
    def needles(self) -> tuple[str, ...]:
        """Everything a row may hold that makes it the subject's: the values and the id."""
        return (*self.values, self.user_id) if self.user_id else self.values

    def matches(self, value: Any) -> bool:
        """Whether ``value`` (text, JSON or bytes) holds one of the subject's needles."""
        text = _as_text(value)
        if not text:
            return False
        lowered = text.casefold()
        return any(v.casefold() in lowered for v in self.needles)


@dataclass
class Found:
    """Rows holding the subject, per table and column (with the rows' primary keys)."""

    rows: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def add(self, table: str, column: str, key: Any) -> None:
        """Record one row's column."""
        self.rows.setdefault(table, {}).setdefault(column, []).append(key)

    def counts(self) -> dict[str, int]:
        """Rows per table (a row counts once, however many of its columns match)."""
        return {
            table: len({key for keys in columns.values() for key in keys})
            for table, columns in sorted(self.rows.items())
        }

    @property
    def total(self) -> int:
        """Rows in every table together."""
        return sum(self.counts().values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: per table, its row count and the columns that matched."""
        return {
            table: {"rows": n, "columns": sorted(self.rows[table])}
            for table, n in self.counts().items()
        }


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", errors="ignore")
    return json.dumps(value, ensure_ascii=False, default=str)


def _searched(column: Column[Any]) -> bool:
    kind = column.type
    if type(kind).__name__ == "Embedding":
        return False  # vectors: numbers, no text
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    # Primary keys too: a throttle key holds the e-mail, and --user finds its own row.
    return isinstance(kind, String | Text | JSON | LargeBinary)


def _is_bytes(column: Column[Any]) -> bool:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    return isinstance(kind, LargeBinary)


def searched_columns() -> Iterator[tuple[Table, list[Column[Any]], list[Column[Any]]]]:
    """(table, primary key columns, searched columns) for every table of the schema."""
    for table in metadata.sorted_tables:
        if table.name in SKIPPED:
            continue
        columns = [c for c in table.columns if _searched(c)]
        if columns:
            yield table, list(table.primary_key.columns), columns


def find(db: Database, subject: Subject) -> Found:
    """Every row of every table with a column that holds the subject."""
    found = Found()
    for table, keys, columns in searched_columns():
        after: tuple[Any, ...] | None = None
        page = BYTES_PAGE if any(_is_bytes(c) for c in columns) else PAGE
        while True:
            statement = select(*keys, *columns).order_by(*keys).limit(page)
            if after is not None:
                statement = statement.where(_after(keys, after))
            with db.read() as conn:
                rows = conn.execute(statement).all()
            for row in rows:
                key = tuple(row[: len(keys)])
                for column, value in zip(columns, row[len(keys) :], strict=True):
                    if subject.matches(value):
                        found.add(table.name, column.name, key[0] if len(key) == 1 else key)
            if len(rows) < page:
                break
            after = tuple(rows[-1][: len(keys)])
    return found


def _after(keys: list[Column[Any]], last: tuple[Any, ...]) -> Any:
    """Rows after ``last`` in primary-key order (keyset paging; composite keys row-wise)."""
    terms = []
    for n, column in enumerate(keys):
        equal = [keys[i] == last[i] for i in range(n)]
        terms.append(and_(*equal, column > last[n]))
    return or_(*terms)


def locate(
    db: Database,
    settings: Settings,
    *,
    email: str | None = None,
    user: str | None = None,
    value: str | None = None,
    actor: Actor | None = None,
) -> tuple[Found, str]:
    """Where the subject appears (right of access), and the keyed hash the audit entry names
    it by: the audit log never holds the subject itself."""
    subject = Subject.of(db, email=email, user=user, value=value)
    found = find(db, subject)
    tag = instance_key(settings).tag(subject.values[0].casefold())
    audit.record_now(
        db,
        actor or operator_actor(),
        "pii.find",
        target_type="subject",
        target_id=tag,
        details={"rows": found.counts()},
    )
    return found, tag
