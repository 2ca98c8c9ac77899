"""Accountability: the audit log (every state change) and security events (auth failures).

``record`` writes inside the caller's transaction, so a change and its audit entry commit
together; ``security_event`` writes in a transaction of its own, because it must be kept even
when the request it belongs to fails.

Refused bearer tokens are counted, not written one by one (:func:`failed_token`): per kind and
source address, the first refusal of a minute is written at once, and the rest of that minute as
one summary event, so a client sending garbage tokens cannot make every request a write.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from awe.core.clock import utcnow
from awe.storage.auth_models import AuditEntry, SecurityEvent
from awe.storage.database import Database


@dataclass(frozen=True)
class Actor:
    """Who acts: a user, the admin token, or awe itself; with where the request came from."""

    type: str
    id: str | None = None
    ip: str | None = None
    trace_id: str | None = None


SYSTEM = Actor("system")


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    project_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry in the caller's transaction."""
    conn.execute(
        insert(AuditEntry).values(
            at=utcnow(),
            actor_type=actor.type,
            actor_id=actor.id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            project_id=project_id,
            ip=actor.ip,
            trace_id=actor.trace_id,
            details=details,
        )
    )


def record_many(conn: Connection, actor: Actor, action: str, targets: list[dict[str, Any]]) -> None:
    """Append one audit entry per target (dicts of :func:`record`'s keywords), in one insert."""
    if not targets:
        return
    at = utcnow()
    conn.execute(
        insert(AuditEntry),
        [
            {
                "at": at,
                "actor_type": actor.type,
                "actor_id": actor.id,
                "action": action,
                "target_type": target.get("target_type"),
                "target_id": target.get("target_id"),
                "project_id": target.get("project_id"),
                "ip": actor.ip,
                "trace_id": actor.trace_id,
                "details": target.get("details"),
            }
            for target in targets
        ],
    )


def record_now(db: Database, actor: Actor, action: str, **target: Any) -> None:
    """Append an audit entry in a transaction of its own (for changes that committed already)."""
    with db.write() as conn:
        record(conn, actor, action, **target)


def security_event(
    db: Database,
    kind: str,
    *,
    email: str | None = None,
    user_id: str | None = None,
    ip: str | None = None,
    detail: str = "",
) -> None:
    """Append a security event in its own transaction (never a password or a token in it)."""
    with db.write() as conn:
        conn.execute(
            insert(SecurityEvent).values(
                at=utcnow(), kind=kind, email=email, user_id=user_id, ip=ip, detail=detail[:2000]
            )
        )


#: The window refused tokens are counted in, per kind and source.
TOKEN_WINDOW_SECONDS = 60.0
#: Sources counted at once; beyond, refusals from new sources share one count.
MAX_SOURCES = 10_000


@dataclass
class _Window:
    started: float
    database: Database
    count: int = 0
    last: dict[str, Any] = field(default_factory=dict)


class _TokenFailures:
    """Counts refused tokens per (kind, address) in windows; writes at most two events each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str | None], _Window] = {}

    def note(self, db: Database, kind: str, fields: dict[str, Any]) -> None:
        now = time.monotonic()
        due: list[tuple[tuple[str, str | None], _Window]] = []
        with self._lock:
            key = (kind, fields.get("ip"))
            if key not in self._windows and len(self._windows) >= MAX_SOURCES:
                key = (kind, "*")
            window = self._windows.get(key)
            if window is not None and now - window.started < TOKEN_WINDOW_SECONDS:
                window.count += 1
                window.last = fields
                return
            # A new window: write this refusal now, and close windows that have ended.
            due = [
                (k, w) for k, w in self._windows.items() if now - w.started >= TOKEN_WINDOW_SECONDS
            ]
            for k, _ in due:
                del self._windows[k]
            self._windows[key] = _Window(started=now, database=db)
        security_event(db, kind, **fields)
        for (kind_, _), closed in due:
            _summary(kind_, closed)

    def flush(self) -> None:
        """Write the summaries of every open window (at shutdown)."""
        with self._lock:
            windows, self._windows = list(self._windows.items()), {}
        for (kind, _), window in windows:
            _summary(kind, window)


def _summary(kind: str, window: _Window) -> None:
    if window.count:
        last = dict(window.last)
        detail = f"{window.count} more like this within {TOKEN_WINDOW_SECONDS:g} s (last: "
        last["detail"] = detail + str(last.get("detail", ""))[:200] + ")"
        security_event(window.database, kind, **last)


_token_failures = _TokenFailures()


def failed_token(
    db: Database,
    kind: str,
    *,
    ip: str | None = None,
    user_id: str | None = None,
    email: str | None = None,
    detail: str = "",
) -> None:
    """Note a refused token: written at once the first time in a window, then counted."""
    _token_failures.note(db, kind, {"ip": ip, "user_id": user_id, "email": email, "detail": detail})


def flush_failed_tokens() -> None:
    """Write what :func:`failed_token` has counted and not written yet."""
    _token_failures.flush()


def list_audit(
    db: Database,
    *,
    action: str | None = None,
    actor_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    statement = select(AuditEntry.__table__)
    if action:
        statement = statement.where(AuditEntry.action == action)
    if actor_id:
        statement = statement.where(AuditEntry.actor_id == actor_id)
    if since is not None:
        statement = statement.where(AuditEntry.at >= since)
    with db.read() as conn:
        rows = conn.execute(statement.order_by(AuditEntry.id.desc()).limit(limit)).all()
    return [_jsonable(dict(r._mapping)) for r in rows]


def list_security_events(
    db: Database, *, kind: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Security events, newest first."""
    statement = select(SecurityEvent.__table__)
    if kind:
        statement = statement.where(SecurityEvent.kind == kind)
    if since is not None:
        statement = statement.where(SecurityEvent.at >= since)
    with db.read() as conn:
        rows = conn.execute(statement.order_by(SecurityEvent.id.desc()).limit(limit)).all()
    return [_jsonable(dict(r._mapping)) for r in rows]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
