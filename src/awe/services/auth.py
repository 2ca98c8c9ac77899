"""Users and logging in: registration, Argon2id passwords, sessions with rotating refresh tokens,
login throttling with lockouts held in the database.

A login is a session row. Its access tokens (short-lived JWTs) name it, so logging out, changing
the password or reusing an old refresh token (a stolen token's sign) revokes every token of it at
once. Rotating the signing secret (services/secrets.py) invalidates every token everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Connection, insert, select, update

from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.errors import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    PermissionDenied,
    TooManyRequests,
    ValidationFailed,
)
from awe.core.ids import new_id
from awe.services import audit, throttle, tokens
from awe.services.audit import Actor
from awe.storage.auth_models import AuthSession
from awe.storage.database import Database
from awe.storage.models import User

ROLES = ("admin", "member")
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")  # \Z: no trailing newline
PASSWORDS = PasswordHash((Argon2Hasher(),))  # Argon2id
# Verified against when the account does not exist, so both cases take as long.
_DUMMY_HASH = PASSWORDS.hash("not a real password, only for timing")


@dataclass(frozen=True)
class UserInfo:
    """A user as the API shows it (never the password hash)."""

    id: str
    email: str
    display_name: str
    role: str
    is_active: bool
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {**self.__dict__, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class TokenPair:
    """What a login or a refresh hands out."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


def _user_info(row: Any) -> UserInfo:
    return UserInfo(row.id, row.email, row.display_name, row.role, row.is_active, row.created_at)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > 1024:
        raise ValidationFailed("the password must be at most 1024 characters long")


def normal_email(email: str) -> str:
    """The email as stored: trimmed and lower-cased; ValidationFailed if it is not one."""
    value = email.strip().lower()
    if not _EMAIL.match(value) or len(value) > 320:
        raise ValidationFailed(f"{email!r} is not an email address")
    return value


def create_user(
    db: Database,
    *,
    email: str,
    password: str,
    role: str = "member",
    display_name: str = "",
    actor: Actor = audit.SYSTEM,
) -> UserInfo:
    """A new user with an Argon2id password hash; Conflict if the email is taken."""
    address, hashed = checked_credentials(email, password)
    with db.write() as conn:
        user_id = insert_user(
            conn, email=address, password_hash=hashed, role=role, display_name=display_name
        )
        audit.record(
            conn,
            actor,
            "user.create",
            target_type="user",
            target_id=user_id,
            details={"email": address, "role": role},
        )
    return get_user(db, user_id)


def checked_credentials(email: str, password: str) -> tuple[str, str]:
    """The normalised email and the password's Argon2id hash (made before any transaction
    opens: hashing takes a while on purpose)."""
    address = normal_email(email)
    _check_password(password)
    return address, PASSWORDS.hash(password)


def insert_user(
    conn: Connection, *, email: str, password_hash: str, role: str, display_name: str
) -> str:
    """Insert a user in the caller's transaction; its id. Conflict if the email is taken."""
    if role not in ROLES:
        raise ValidationFailed(f"role {role!r} is not one of {', '.join(ROLES)}")
    if conn.execute(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict(f"a user with the email {email} exists already")
    now = utcnow()
    user_id = new_id()
    conn.execute(
        insert(User).values(
            id=user_id,
            email=email,
            display_name=display_name.strip()[:200],
            password_hash=password_hash,
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
    )
    return user_id


def register(
    db: Database, settings: Settings, *, email: str, password: str, display_name: str, actor: Actor
) -> UserInfo:
    """Self-service registration (a member), unless AWE_REGISTRATION_OPEN is false."""
    if not settings.registration_open:
        raise PermissionDenied("registration is closed; an admin creates accounts")
    return create_user(db, email=email, password=password, display_name=display_name, actor=actor)


def get_user(db: Database, user_id: str) -> UserInfo:
    """A user by id."""
    with db.read() as conn:
        row = conn.execute(select(User.__table__).where(User.id == user_id)).first()
    if row is None:
        raise NotFound(f"no user {user_id}")
    return _user_info(row)


def list_users(db: Database) -> list[UserInfo]:
    """Every user, by email."""
    with db.read() as conn:
        rows = conn.execute(select(User.__table__).order_by(User.email)).all()
    return [_user_info(r) for r in rows]


# ---------------------------------------------------------------------------------- logging in


def login(
    db: Database, settings: Settings, *, email: str, password: str, actor: Actor
) -> TokenPair:
    """Check the password and open a session; throttled per account and per address.

    Each attempt takes its number under the account and the address before the password is
    checked (services/throttle.py), so parallel guesses cannot get more than the limit checked;
    a successful login gives the address its number back.
    """
    user_id, role, session_id, jti = _open_session(
        db, settings, email=email, password=password, actor=actor, client="api"
    )
    return _pair(db, settings, user_id, role, session_id, jti)


def login_browser(
    db: Database, settings: Settings, *, email: str, password: str, actor: Actor
) -> tuple[str, str]:
    """Log in from the web UI, throttled like ``login``: (the session cookie, the session id).

    The session is a login session like any other: logging out, changing the password and
    rotating the signing secret end it."""
    user_id, _, session_id, _ = _open_session(
        db, settings, email=email, password=password, actor=actor, client="browser"
    )
    return tokens.issue_browser(db, settings, user_id=user_id, session_id=session_id), session_id


def _open_session(
    db: Database, settings: Settings, *, email: str, password: str, actor: Actor, client: str
) -> tuple[str, str, str, str]:
    address = email.strip().lower()
    now = utcnow()
    keys = throttle.keys(address, actor.ip)
    with db.read() as conn:
        locked = throttle.locked_until(conn, keys, now)
    attempts: list[throttle.Attempt] = []
    if locked is None:
        with db.write() as conn:
            attempts = [throttle.reserve(conn, settings, key, now) for key in keys]
    refused = [a for a in attempts if a.refused(now)]
    if refused:
        with db.write() as conn:
            throttle.give_back(conn, attempts)
    if not attempts or refused:
        audit.failed_token(
            db, "login_locked", email=address, ip=actor.ip, detail="login refused during a lockout"
        )
        until = locked or max((a.locked_until for a in refused if a.locked_until), default=None)
        wait = (until - now).total_seconds() if until else settings.login_lockout_seconds
        raise TooManyRequests(
            "too many failed logins; try again later", retry_after=max(1, int(wait))
        )
    with db.read() as conn:
        user = conn.execute(select(User.__table__).where(User.email == address)).first()
    valid = PASSWORDS.verify(
        password, user.password_hash if user and user.password_hash else _DUMMY_HASH
    )
    if user is None or not valid or not user.is_active:
        with db.write() as conn:
            newly_locked = [
                a.key for a in attempts if throttle.lock_if_spent(conn, settings, a, now)
            ]
            if attempts[0].number == 1:
                throttle.purge(conn, settings, now)
        audit.security_event(
            db,
            "login_failed",
            email=address,
            ip=actor.ip,
            user_id=user.id if user else None,
            detail="inactive account" if user and valid else "wrong email or password",
        )
        for key in newly_locked:
            audit.security_event(
                db,
                "lockout",
                email=address,
                ip=actor.ip,
                detail=f"{key} locked for {settings.login_lockout_seconds} s",
            )
        raise AuthenticationFailed("wrong email or password")
    session_id, jti = new_id(), new_id()
    with db.write() as conn:
        throttle.succeeded(conn, attempts)
        conn.execute(
            insert(AuthSession).values(
                id=session_id,
                user_id=user.id,
                refresh_jti=jti,
                created_at=now,
                expires_at=now + timedelta(days=settings.refresh_token_days),
                ip=actor.ip,
            )
        )
        audit.record(
            conn,
            Actor("user", user.id, actor.ip, actor.trace_id),
            "auth.login",
            target_type="session",
            target_id=session_id,
            details={"client": client},
        )
    return user.id, user.role, session_id, jti


def _pair(
    db: Database, settings: Settings, user_id: str, role: str, session_id: str, jti: str
) -> TokenPair:
    return TokenPair(
        access_token=tokens.issue_access(
            db, settings, user_id=user_id, role=role, session_id=session_id
        ),
        refresh_token=tokens.issue_refresh(
            db, settings, user_id=user_id, session_id=session_id, jti=jti
        ),
        expires_in=settings.access_token_minutes * 60,
    )


def refresh(db: Database, settings: Settings, refresh_token: str, *, actor: Actor) -> TokenPair:
    """A new token pair for a live session; the refresh token is single-use (rotated)."""
    claims = tokens.decode(db, settings, refresh_token, expected="refresh", ip=actor.ip)
    now = utcnow()
    new_jti = new_id()
    with db.write() as conn:
        session = conn.execute(
            select(AuthSession.__table__).where(AuthSession.id == claims["sid"])
        ).first()
        if session is None or session.revoked_at is not None or session.expires_at < now:
            reuse = None
        elif session.refresh_jti != claims["jti"]:
            # An old refresh token came back: someone holds a copy. End the whole session.
            conn.execute(
                update(AuthSession).where(AuthSession.id == session.id).values(revoked_at=now)
            )
            reuse = session
        else:
            user = conn.execute(
                select(User.role, User.is_active).where(User.id == session.user_id)
            ).one()
            if user.is_active:
                conn.execute(
                    update(AuthSession)
                    .where(AuthSession.id == session.id)
                    .values(refresh_jti=new_jti)
                )
                return _pair(db, settings, session.user_id, user.role, session.id, new_jti)
            # A deactivated user's session ends here.
            conn.execute(
                update(AuthSession).where(AuthSession.id == session.id).values(revoked_at=now)
            )
            reuse = None
    if reuse is not None:
        audit.security_event(
            db,
            "refresh_token_reuse",
            user_id=reuse.user_id,
            ip=actor.ip,
            detail=f"session {reuse.id} revoked",
        )
    else:
        audit.security_event(
            db,
            "token_revoked",
            user_id=claims["sub"],
            ip=actor.ip,
            detail="refresh of an ended session",
        )
    raise AuthenticationFailed("this session has ended; log in again")


def logout(db: Database, *, session_id: str, actor: Actor) -> None:
    """End a session: its access and refresh tokens stop working at once."""
    with db.write() as conn:
        conn.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        audit.record(conn, actor, "auth.logout", target_type="session", target_id=session_id)


def change_password(db: Database, *, user_id: str, current: str, new: str, actor: Actor) -> None:
    """Set a new password after checking the current one; every session of the user ends."""
    _check_password(new)
    with db.read() as conn:
        stored = conn.execute(select(User.password_hash).where(User.id == user_id)).scalar()
    if not stored or not PASSWORDS.verify(current, stored):
        audit.security_event(
            db,
            "password_change_failed",
            user_id=user_id,
            ip=actor.ip,
            detail="wrong current password",
        )
        raise AuthenticationFailed("the current password is wrong")
    now = utcnow()
    with db.write() as conn:
        conn.execute(
            update(User)
            .where(User.id == user_id)
            .values(password_hash=PASSWORDS.hash(new), updated_at=now)
        )
        conn.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        audit.record(conn, actor, "user.password_change", target_type="user", target_id=user_id)


def update_user(
    db: Database,
    user_id: str,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    actor: Actor,
) -> UserInfo:
    """Change a user's role or deactivate (or reactivate) them; a deactivated user's sessions
    end at once. The last active admin can be neither demoted nor deactivated (Conflict)."""
    if role is not None and role not in ("admin", "member"):
        raise ValidationFailed(f"role {role!r} is not admin or member")
    now = utcnow()
    with db.write() as conn:
        row = conn.execute(select(User.role, User.is_active).where(User.id == user_id)).first()
        if row is None:
            raise NotFound(f"no user {user_id}")
        losing = row.role == "admin" and row.is_active
        losing = losing and (role == "member" or is_active is False)
        if losing:
            # Locked, so two admins demoting each other at once cannot both pass the count.
            admins = conn.execute(
                select(User.id)
                .where(User.role == "admin", User.is_active.is_(True))
                .with_for_update()
            ).all()
            if len(admins) <= 1:
                raise Conflict("this is the last active admin: make another admin first")
        values: dict[str, Any] = {"updated_at": now}
        if role is not None:
            values["role"] = role
        if is_active is not None:
            values["is_active"] = is_active
        conn.execute(update(User).where(User.id == user_id).values(**values))
        if is_active is False:
            conn.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        audit.record(
            conn,
            actor,
            "user.update",
            target_type="user",
            target_id=user_id,
            details={k: v for k, v in (("role", role), ("is_active", is_active)) if v is not None},
        )
    return get_user(db, user_id)
