"""Where a data subject appears: every text, JSON and byte column of every table, sealed ones
opened (their column types do that as rows are read), read in pages by primary key.

The tables are not listed by hand: whatever the schema holds (a table added later included) is
searched, so a right-of-access answer, and the erasure that will build on it, cannot forget a
table. A match is a case-insensitive occurrence of any of the subject's values (or their account's
id) in the column's text (JSON as its text, bytes decoded as UTF-8).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

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


#: Letters and digits that glue to a value: it is found only where none touches it, so an
#: address is not found inside a longer one (ann@… in joann@…) nor a name inside a longer name
#: (Иван in Иванов). Scripts written without spaces between words do not glue: a particle after
#: a name (김민수님) or the words around it (คุณสมชายใจดี) are not part of it.
_UNSPACED = (
    r"\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u3130-\u318f"
    r"\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
)
_GLUE = rf"[^\W{_UNSPACED}]"
#: Combining marks glue too (José written decomposed is not Jose).
_MARK = r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
#: A letter, for the hyphen rule: a hyphen between letters joins a name (Mary-Ann), one after
#: digits does not (+49-1701234567).
_LETTER = rf"[^\W\d_{_UNSPACED}]"
#: Where a value may start although a letter comes before it: after an escape (``\n`` written
#: out in a JSON string) or a percent-encoded separator (``%22ann%40x.com%22``; not an encoded
#: letter, ``.`` or ``+``, which would join it to what comes before).
_ESCAPED = r"(?<=\\[ntr])|(?<=%(?:2[0-9ACFacf]|3[A-Fa-f]|40|5[B-Eb-e]|60|7[B-Eb-e]|0[9ADad]))"
#: What awe writes in place of an erased value; a value found in it could never be verified.
PSEUDONYM_SAMPLE = "erased-0123456789abcdef erased-0123456789abcdef@erased.invalid"


def pattern_text(value: str) -> str:
    """The regular expression that finds ``value`` (any case, any run of spaces where it has
    one, composed or decomposed accents, percent-encoded) where it stands on its own: not glued
    to letters, digits or a hyphen, and an e-mail address not inside a longer address or host."""
    forms = {value, unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value)}
    forms |= {quote(v, safe="") for v in list(forms)} | {quote_plus(v) for v in list(forms)}
    bodies = "|".join(
        re.escape(v).replace("\\ ", r"\s+") for v in sorted(forms, key=len, reverse=True)
    )
    address = "@" in value
    free = rf"(?<!{_GLUE})(?<!{_MARK})"
    glued = rf"{free}(?<![-.+%])" if address else rf"{free}(?<!{_LETTER}-)"
    before = f"(?:{_ESCAPED}|{glued})"
    after = rf"(?!{_GLUE}|{_MARK}|-|\.\w)" if address else rf"(?!{_GLUE}|{_MARK}|-{_LETTER})"
    starts = bool(re.match(r"\w", value))
    ends = bool(re.search(r"\w$", value))
    return (before if starts else "") + f"(?:{bodies})" + (after if ends else "")


@dataclass(frozen=True)
class Subject:
    """What identifies a person: the values to look for (an e-mail, a name…), and the id of
    their account when they have one."""

    values: tuple[str, ...]
    #: Their account's id: the rows that name it by id (sessions, tokens, the audit's actor).
    user_id: str | None = None
    #: How they were named: "email", "user" or "value" (only a value may find their account).
    kind: str = "value"

    @classmethod
    def of(
        cls,
        db: Database,
        *,
        email: str | None = None,
        user: str | None = None,
        value: str | None = None,
    ) -> Subject:
        """One of ``email`` (the account with exactly that address, if any, is theirs),
        ``user`` (an account's id: its address is looked for) or ``value``; ValidationFailed
        unless exactly one is given, or it cannot mean one person. Messages never repeat the
        value (they end up in the record of the command)."""
        given = [x for x in (email, user, value) if x]
        if len(given) != 1:
            raise ValidationFailed("name exactly one of --email, --user or --value")
        needle = given[0].strip()
        try:
            needle.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed("the value is not valid text (half a character in it)") from None
        if len(needle) < 4:
            raise ValidationFailed(
                "the value is too short to identify one person: give 4 characters or more"
            )
        if email and "@" not in needle:
            raise ValidationFailed("--email needs an e-mail address (it has no @)")
        if re.search(pattern_text(needle), PSEUDONYM_SAMPLE, re.IGNORECASE):
            raise ValidationFailed(
                "the value is part of what awe writes for erased values (erased-…): name the"
                " person by more than that"
            )
        if user:
            with db.read() as conn:
                row = conn.execute(select(User.email).where(User.id == needle)).one_or_none()
            if row is None:
                raise NotFound("no user with that id (awe admin users, or GET /api/v1/users)")
            # The person's name in receipts and audit: their e-mail.
            return cls((row.email,), user_id=needle, kind="user")
        if email:
            with db.read() as conn:
                account = conn.execute(
                    select(User.id).where(User.email == needle.lower())
                ).scalar_one_or_none()
            return cls((needle,), user_id=account, kind="email")
        return cls((needle,))

    def with_account(self, email: str, user_id: str) -> Subject:
        """The subject with the account found for them (its address looked for too)."""
        values = self.values if email.casefold() in (v.casefold() for v in self.values) else (
            *self.values, email)  # fmt: skip
        return Subject(values, user_id=user_id, kind=self.kind)

    def also(self, extra: list[str]) -> Subject:
        """The subject with more values to look for (privacy mode's placeholders of them)."""
        more = tuple(v for v in extra if v not in self.values)
        return Subject((*self.values, *more), user_id=self.user_id, kind=self.kind)

    def tag(self, settings: Settings) -> str:
        """The keyed hash that names them in receipts and the audit log."""
        return instance_key(settings).tag(f"subject:{self.values[0].casefold()}")

    @property
    def pattern(self) -> re.Pattern[str]:
        """Finds any of the values (see :func:`pattern_text`), longest first."""
        return _compiled(self.values)

    def matches(self, value: Any, *, by_id: bool = False) -> bool:
        """Whether ``value`` (text, bytes, or JSON: its keys and strings) holds one of the
        values; with ``by_id``, or the account's id."""
        found = self.pattern.search
        if by_id and self.user_id:
            with_id = _compiled((*self.values, self.user_id))
            found = with_id.search
        return any(found(text) for text in _texts(value))


@lru_cache(maxsize=64)
def _compiled(values: tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(pattern_text(v) for v in ordered), re.IGNORECASE)


def _texts(value: Any) -> Iterator[str]:
    """The strings of ``value``: itself, bytes decoded, JSON keys and strings (numbers as
    text, booleans and nulls not: they are JSON's words, not anyone's data)."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes | memoryview):
        yield bytes(value).decode("utf-8", errors="ignore")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, int | float):
        yield str(value)
    else:
        yield str(value)


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


def find(db: Database, subject: Subject, *, by_id: bool = False) -> Found:
    """Every row of every table with a column that holds the subject (with ``by_id``, or
    their account's id). A document's bytes are read as the text its extractor gets from them
    (a PDF's text is compressed inside the file)."""
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
                values = dict(zip((c.name for c in columns), row[len(keys) :], strict=True))
                for column in columns:
                    value = values[column.name]
                    if table.name == "documents" and column.name == "content" and value:
                        value = document_text(str(values["name"]), bytes(value))
                    if subject.matches(value, by_id=by_id):
                        found.add(table.name, column.name, key[0] if len(key) == 1 else key)
            if len(rows) < page:
                break
            after = tuple(rows[-1][: len(keys)])
    return found


def document_text(name: str, content: bytes) -> str:
    """What a document says: its extracted text (a PDF's is compressed inside the file) and
    its bytes decoded (an HTML link, a title or a comment the extractor drops)."""
    from awe.ai.knowledge.extract import decode, extract
    from awe.ai.knowledge.ingest import kind_of

    raw = decode(content)
    kind = kind_of(name)
    if kind == "text":
        return raw
    try:
        return extract(kind, content, name) + "\n" + raw
    except Exception:  # noqa: BLE001 - a damaged file: its bytes are what can be read
        return raw


def _after(keys: list[Column[Any]], last: tuple[Any, ...]) -> Any:
    """Rows after ``last`` in primary-key order (keyset paging; composite keys row-wise)."""
    terms = []
    for n, column in enumerate(keys):
        equal = [keys[i] == last[i] for i in range(n)]
        terms.append(and_(*equal, column > last[n]))
    return or_(*terms)


def with_placeholders(subject: Subject, settings: Settings) -> Subject:
    """The subject with the placeholders privacy mode writes for its values (a scrubbed log
    line holds the placeholder, not the value)."""
    from awe.ai.pii import placeholders_of

    return subject.also([p for v in subject.values for p in placeholders_of(settings, v)])


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
    subject = with_placeholders(Subject.of(db, email=email, user=user, value=value), settings)
    found = find(db, subject, by_id=True)
    tag = subject.tag(settings)
    audit.record_now(
        db,
        actor or operator_actor(),
        "pii.find",
        target_type="subject",
        target_id=tag,
        details={"rows": found.counts()},
    )
    return found, tag
