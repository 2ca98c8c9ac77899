"""Bearer tokens: JWT access and refresh tokens (PyJWT, HS256), personal API tokens, and the
admin token; turning any of them into the principal a request acts for.

Verification pins the algorithm (so ``alg: none`` and algorithm swaps are refused), requires
the expiry, issuer, type and session claims, and checks the session is still open. Personal
tokens are random, shown once, and stored as their SHA-256 only.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import insert, select, update

from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.errors import AuthenticationFailed, NotFound, ValidationFailed
from awe.core.ids import new_id
from awe.services import audit
from awe.services.audit import Actor
from awe.services.signing import signing_secret
from awe.storage.auth_models import ApiToken, AuthSession
from awe.storage.database import Database
from awe.storage.models import User

ALGORITHM = "HS256"
ISSUER = "awe"
PAT_PREFIX = "awe_pat_"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for."""

    #: "user" (a login), "api-token" (a personal token), "admin-token", or "operator" (the local
    #: CLI, which holds the database already).
    kind: str
    user_id: str | None
    role: str
    session_id: str | None = None
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Admins (the admin token, the operator) may use the admin endpoints and privileged
        kinds, and see every project."""
        return self.role == "admin"

    def actor(self, ip: str | None, trace_id: str | None) -> Actor:
        """This principal as the actor of audit entries."""
        if self.kind == "operator":
            return operator_actor()
        kind = "admin-token" if self.kind == "admin-token" else "user"
        return Actor(kind, self.user_id, ip, trace_id)


#: The operator: whoever runs the ``awe`` CLI on a machine that holds the database.
OPERATOR = Principal("operator", None, "admin")


def operator_actor() -> Actor:
    """The operator as an audit actor, named by the operating-system user running the CLI."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's user, say)
        name = "unknown"
    return Actor("operator", name[:36])


@dataclass(frozen=True)
class ApiTokenInfo:
    """A personal token as listed (never the token itself)."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.__dict__.items()
        }


def _encode(db: Database, settings: Settings, claims: dict[str, Any], lifetime: timedelta) -> str:
    now = utcnow()
    payload = {**claims, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + lifetime}
    return jwt.encode(payload, signing_secret(db, settings), algorithm=ALGORITHM)


def issue_access(
    db: Database, settings: Settings, *, user_id: str, role: str, session_id: str
) -> str:
    """A short-lived access token of a session."""
    return _encode(
        db,
        settings,
        {"sub": user_id, "sid": session_id, "role": role, "typ": "access", "jti": new_id()},
        timedelta(minutes=settings.access_token_minutes),
    )


def issue_refresh(
    db: Database, settings: Settings, *, user_id: str, session_id: str, jti: str
) -> str:
    """The session's refresh token (single use: each refresh replaces it)."""
    return _encode(
        db,
        settings,
        {"sub": user_id, "sid": session_id, "typ": "refresh", "jti": jti},
        timedelta(days=settings.refresh_token_days),
    )


def issue_browser(db: Database, settings: Settings, *, user_id: str, session_id: str) -> str:
    """The cookie of a browser session: lasts as long as the session, names it, and is good
    only as a cookie (``typ: browser``: the API, bearer-only, refuses it)."""
    return _encode(
        db,
        settings,
        {"sub": user_id, "sid": session_id, "typ": "browser", "jti": new_id()},
        timedelta(days=settings.refresh_token_days),
    )


def csrf_token(db: Database, settings: Settings, session_id: str) -> str:
    """The session's token for forms: fixed for the session, unguessable without the signing
    secret (so rotating the secret changes it with the cookie)."""
    key = signing_secret(db, settings).encode()
    return hmac.new(key, f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()[:40]


def decode(
    db: Database, settings: Settings, token: str, *, expected: str, ip: str | None
) -> dict[str, Any]:
    """The verified claims of a JWT of type ``expected``; AuthenticationFailed otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            signing_secret(db, settings),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "typ", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        audit.failed_token(db, "token_expired", ip=ip, detail=f"{expected} token expired")
        raise AuthenticationFailed("the token has expired; refresh it or log in again") from None
    except jwt.InvalidTokenError as exc:
        audit.failed_token(db, "token_invalid", ip=ip, detail=f"{type(exc).__name__}: {exc}")
        raise AuthenticationFailed("the token is not valid") from None
    if claims.get("typ") != expected:
        audit.failed_token(
            db,
            "token_misuse",
            user_id=str(claims.get("sub")),
            ip=ip,
            detail=f"a {claims.get('typ')} token used as {expected}",
        )
        raise AuthenticationFailed(f"a {claims.get('typ')} token is not accepted here")
    return claims


def authenticate(db: Database, settings: Settings, bearer: str, *, ip: str | None) -> Principal:
    """The principal of an Authorization bearer value: admin token, personal token, or JWT."""
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    if admin and hmac.compare_digest(bearer.encode(), admin.encode()):
        return Principal("admin-token", None, "admin")
    if bearer.startswith(PAT_PREFIX):
        return _personal(db, bearer, ip)
    return _session_principal(db, decode(db, settings, bearer, expected="access", ip=ip), ip)


def authenticate_browser(
    db: Database, settings: Settings, cookie: str, *, ip: str | None
) -> Principal:
    """The principal of a browser session cookie, while its login session is open."""
    return _session_principal(db, decode(db, settings, cookie, expected="browser", ip=ip), ip)


def _session_principal(db: Database, claims: dict[str, Any], ip: str | None) -> Principal:
    now = utcnow()
    with db.read() as conn:
        row = conn.execute(
            select(AuthSession.revoked_at, AuthSession.expires_at, User.role, User.is_active)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == claims["sid"], AuthSession.user_id == claims["sub"])
        ).first()
    if row is None or row.revoked_at is not None or row.expires_at < now or not row.is_active:
        audit.failed_token(
            db,
            "token_revoked",
            user_id=claims["sub"],
            ip=ip,
            detail=f"{claims['typ']} token of an ended session",
        )
        raise AuthenticationFailed("this session has ended; log in again")
    return Principal("user", claims["sub"], row.role, session_id=claims["sid"])


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _personal(db: Database, token: str, ip: str | None) -> Principal:
    now = utcnow()
    with db.read() as conn:
        row = conn.execute(
            select(
                ApiToken.id,
                ApiToken.user_id,
                ApiToken.expires_at,
                ApiToken.revoked_at,
                ApiToken.last_used_at,
                User.role,
                User.is_active,
            )
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == _hash(token))
        ).first()
    if row is None or row.revoked_at is not None or not row.is_active:
        kind = "token_invalid" if row is None else "token_revoked"
        audit.failed_token(
            db,
            kind,
            user_id=row.user_id if row else None,
            ip=ip,
            detail="personal API token refused",
        )
        raise AuthenticationFailed("the API token is not valid")
    if row.expires_at is not None and row.expires_at < now:
        audit.failed_token(
            db, "token_expired", user_id=row.user_id, ip=ip, detail="personal API token expired"
        )
        raise AuthenticationFailed("the API token has expired")
    if row.last_used_at is None or row.last_used_at < now - timedelta(minutes=1):
        with db.write() as conn:  # at most once a minute: reads must not all become writes
            conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return Principal("api-token", row.user_id, row.role, token_id=row.id)


def create_api_token(
    db: Database, *, user_id: str, name: str, days: int | None, actor: Actor
) -> tuple[str, ApiTokenInfo]:
    """A new personal token: (the token, shown this once; what is stored of it)."""
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("a token needs a name of 1 to 100 characters")
    if days is not None and not 1 <= days <= 3650:
        raise ValidationFailed("a token lasts from 1 to 3650 days")
    token = PAT_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token_id = new_id()
    with db.write() as conn:
        conn.execute(
            insert(ApiToken).values(
                id=token_id,
                user_id=user_id,
                name=name.strip(),
                token_hash=_hash(token),
                prefix=token[: len(PAT_PREFIX) + 4],
                created_at=now,
                expires_at=now + timedelta(days=days) if days else None,
            )
        )
        audit.record(
            conn,
            actor,
            "token.create",
            target_type="api_token",
            target_id=token_id,
            details={"name": name.strip()},
        )
    return token, next(t for t in list_api_tokens(db, user_id=user_id) if t.id == token_id)


def list_api_tokens(db: Database, *, user_id: str) -> list[ApiTokenInfo]:
    """A user's personal tokens, newest first."""
    with db.read() as conn:
        rows = conn.execute(
            select(
                ApiToken.id,
                ApiToken.name,
                ApiToken.prefix,
                ApiToken.created_at,
                ApiToken.last_used_at,
                ApiToken.expires_at,
                ApiToken.revoked_at,
            )
            .where(ApiToken.user_id == user_id)
            .order_by(ApiToken.id.desc())
        ).all()
    return [ApiTokenInfo(**r._mapping) for r in rows]


def revoke_api_token(db: Database, *, user_id: str, token_id: str, actor: Actor) -> None:
    """Revoke one of the user's tokens; NotFound if it is not theirs."""
    with db.write() as conn:
        done = conn.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.user_id == user_id)
            .values(revoked_at=utcnow())
            .returning(ApiToken.id)
        ).first()
        if done is None:
            raise NotFound(f"no API token {token_id}")
        audit.record(conn, actor, "token.revoke", target_type="api_token", target_id=token_id)
