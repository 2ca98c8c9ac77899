"""The first admin of a fresh installation: a one-time setup link instead of open registration.

While awe has no users, ``awe up`` makes a setup token and prints a link with it (Jenkins shows
an initial admin password the same way). The token is random, kept only as its SHA-256, valid
for :data:`SETUP_MINUTES`, replaced by the next start, and used up by the admin it creates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from awe.core.clock import utcnow
from awe.core.errors import Conflict, PermissionDenied
from awe.services import audit
from awe.services.audit import Actor
from awe.services.auth import UserInfo, checked_credentials, get_user, insert_user
from awe.storage import instance_state
from awe.storage.database import Database
from awe.storage.models import User

STATE_NAME = "setup_token"
SETUP_MINUTES = 60
SETUP_PATH = "/setup"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def has_users(db: Database) -> bool:
    """True once anyone has an account."""
    with db.read() as conn:
        return conn.execute(select(User.id).limit(1)).first() is not None


def new_token(db: Database) -> tuple[str, datetime] | None:
    """A fresh setup token and when it expires, while awe has no users (None once it has)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + timedelta(minutes=SETUP_MINUTES)
    with db.write() as conn:
        if conn.execute(select(User.id).limit(1)).first() is not None:
            return None
        value = json.dumps({"sha256": _digest(token), "expires_at": expires.isoformat()})
        instance_state.put(conn, STATE_NAME, value, now=now)
    return token, expires


def first_admin(
    db: Database, *, token: str, email: str, password: str, display_name: str, actor: Actor
) -> UserInfo:
    """Create the first admin with a valid setup token, and use the token up.

    PermissionDenied for a token that is not the current one or has expired; Conflict when awe
    has users already.
    """
    now = utcnow()
    with db.read() as conn:
        if conn.execute(select(User.id).limit(1)).first() is not None:
            raise Conflict("awe is set up already: log in, or ask an admin for an account")
        valid = _valid(instance_state.get(conn, STATE_NAME), token, now)
    if not valid:
        audit.failed_token(db, "setup_token_invalid", ip=actor.ip, detail="setup link refused")
        raise PermissionDenied(
            "this setup link is not valid: it was used, it expired, or a newer one replaced it;"
            " restart `awe up` for a new link, or create an admin with: awe admin create EMAIL"
        )
    # Only now the slow part (the hash is slow on purpose): a wrong token costs nothing.
    address, hashed = checked_credentials(email, password)
    with db.write() as conn:
        # Use the token up first: of two requests with it at once, one gets the row, the other
        # nothing (and no admin).
        if not _valid(instance_state.take(conn, STATE_NAME), token, now):
            raise PermissionDenied("this setup link was used meanwhile")
        if conn.execute(select(User.id).limit(1)).first() is not None:
            raise Conflict("awe is set up already: log in, or ask an admin for an account")
        user_id = insert_user(
            conn, email=address, password_hash=hashed, role="admin", display_name=display_name
        )
        audit.record(
            conn,
            actor,
            "user.setup",
            target_type="user",
            target_id=user_id,
            details={"email": address, "role": "admin"},
        )
    return get_user(db, user_id)


def _valid(stored: str | None, token: str, now: datetime) -> bool:
    """Whether ``token`` is the stored setup token and it has not expired."""
    if not stored:
        return False
    record = json.loads(stored)
    same = hmac.compare_digest(record["sha256"], _digest(token))
    return same and datetime.fromisoformat(record["expires_at"]) > now
