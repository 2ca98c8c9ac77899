"""Accountability: the audit log (every state change) and security events (auth failures).

``record`` writes inside the caller's transaction, so a change and its audit entry commit
together; ``security_event`` writes in a transaction of its own, because it must be kept even
when the request it belongs to fails.
"""

from __future__ import annotations

from dataclasses import dataclass
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
