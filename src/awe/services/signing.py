"""The token signing secret, and the check that every process shares one instance key.

The signing secret is ``AWE_JWT_SECRET``, or a random secret kept in the database, sealed with
the instance key: every API process of an installation, on any machine, signs and checks with
the same one, so several processes never answer each other's tokens with random 401s. Rotating
it (``awe secrets rotate``) logs everyone out; other processes see a new secret within
:data:`REFRESH_SECONDS`.

What the database holds is only usable with the instance key, so every machine needs the same
key (``AWE_SECRET_KEY``, or the same key file). The database keeps the key's fingerprint from
its first use; :func:`check_instance_key` compares, so a machine with another key is told so at
start (``awe config show`` reports it too) instead of failing later.
"""

from __future__ import annotations

import secrets
import threading
import time

from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.crypto import InstanceKey, SealBroken, instance_key
from awe.core.errors import ConfigurationError
from awe.storage import instance_state
from awe.storage.database import Database

SECRET_NAME = "jwt_signing_secret"  # noqa: S105 - the name of its row, not a secret
FINGERPRINT_NAME = instance_state.INSTANCE_KEY_FINGERPRINT
SECRET_BYTES = 48
#: How long a process keeps the secret it read before reading it again.
REFRESH_SECONDS = 5.0
_PURPOSE = "jwt-signing-secret"
_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def signing_secret(db: Database, settings: Settings) -> str:
    """The current signing secret (made, sealed in the database, on first use)."""
    if settings.jwt_secret is not None:
        value = settings.jwt_secret.get_secret_value()
        if len(value) < 32:
            raise ConfigurationError("AWE_JWT_SECRET must be at least 32 characters long")
        return value
    cache_key = db.describe()
    with _lock:
        cached = _cache.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < REFRESH_SECONDS:
            return cached[1]
    key = _key(db, settings)
    with db.read() as conn:
        sealed = instance_state.get(conn, SECRET_NAME)
    if sealed is None:  # the first use of this database: make one (the first writer wins)
        fresh = key.seal(secrets.token_urlsafe(SECRET_BYTES).encode(), purpose=_PURPOSE)
        with db.write() as conn:
            sealed = instance_state.put_if_absent(conn, SECRET_NAME, fresh, now=utcnow())
    value = _open(key, sealed)
    with _lock:
        _cache[cache_key] = (time.monotonic(), value)
    return value


def rotate(db: Database, settings: Settings) -> None:
    """A new signing secret: every token issued so far stops being valid."""
    if settings.jwt_secret is not None:
        raise ConfigurationError(
            "the signing secret comes from AWE_JWT_SECRET; set a new value there and restart"
        )
    key = _key(db, settings)
    sealed = key.seal(secrets.token_urlsafe(SECRET_BYTES).encode(), purpose=_PURPOSE)
    with db.write() as conn:
        instance_state.put(conn, SECRET_NAME, sealed, now=utcnow())
    with _lock:
        _cache.pop(db.describe(), None)


def _open(key: InstanceKey, sealed: str) -> str:
    try:
        return key.open(sealed, purpose=_PURPOSE).decode()
    except SealBroken:
        raise ConfigurationError(
            "the token signing secret in the database was sealed with another instance key:"
            " every machine needs the same AWE_SECRET_KEY (or the same key file)"
        ) from None


def _key(db: Database, settings: Settings) -> InstanceKey:
    key = instance_key(settings)
    check_instance_key(db, key)
    return key


def check_instance_key(db: Database, key: InstanceKey) -> None:
    """Record the key's fingerprint on first use; ConfigurationError if this process has another
    key than the one the database was set up with."""
    with db.read() as conn:
        recorded = instance_state.get(conn, FINGERPRINT_NAME)
    if recorded is None:
        with db.write() as conn:
            recorded = instance_state.put_if_absent(
                conn, FINGERPRINT_NAME, key.fingerprint, now=utcnow()
            )
    if recorded != key.fingerprint:
        raise ConfigurationError(
            f"this process's instance key ({key.source}, fingerprint {key.fingerprint}) is not the"
            f" one this database was set up with (fingerprint {recorded}): give every machine the"
            " same AWE_SECRET_KEY (or the same key file), or secrets and sealed data will not open"
        )


def key_status(db: Database, settings: Settings) -> str:
    """How this process's instance key compares with the database's, in words."""
    key = instance_key(settings)
    with db.read() as conn:
        recorded = instance_state.get(conn, FINGERPRINT_NAME)
    if recorded is None:
        return f"{key.fingerprint} ({key.source}; not recorded in the database yet)"
    if recorded != key.fingerprint:
        return (
            f"MISMATCH: this process has {key.fingerprint} ({key.source}), the database was set"
            f" up with {recorded}; set the same AWE_SECRET_KEY on every machine"
        )
    return f"{key.fingerprint} ({key.source}; matches the database)"
