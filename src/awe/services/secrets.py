"""The token signing secret: from AWE_JWT_SECRET, or a 0600 file in AWE_HOME made on first use.

Rotating the secret (``awe secrets rotate``) logs everyone out: every token signed with the
old one fails its signature check. API processes on this machine notice the new file at their
next request (its modification time is checked); elsewhere, distribute it and restart.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from awe.core.config import Settings
from awe.core.errors import ConfigurationError, PermissionDenied

SECRET_BYTES = 48
_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def secret_path(settings: Settings) -> Path:
    """Where the signing secret file lives."""
    return settings.home / "secrets" / "jwt_secret"


def _write(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    os.replace(temporary, path)  # readers see the old secret or the new one, never half of one


def signing_secret(settings: Settings) -> str:
    """The current secret (created, 0600, when there is none yet)."""
    if settings.jwt_secret is not None:
        value = settings.jwt_secret.get_secret_value()
        if len(value) < 32:
            raise ConfigurationError("AWE_JWT_SECRET must be at least 32 characters long")
        return value
    path = secret_path(settings)
    with _lock:
        if not path.exists():
            _write(path, secrets.token_urlsafe(SECRET_BYTES))
        stat = path.stat()
        if stat.st_mode & 0o077:
            raise PermissionDenied(
                f"{path} is readable by others (mode {stat.st_mode & 0o777:o}); chmod 600 it"
            )
        cached = _cache.get(str(path))
        if cached is None or cached[0] != stat.st_mtime:
            _cache[str(path)] = (stat.st_mtime, path.read_text(encoding="utf-8").strip())
        return _cache[str(path)][1]


def rotate(settings: Settings) -> Path:
    """Write a new secret: every token issued so far stops being valid."""
    if settings.jwt_secret is not None:
        raise ConfigurationError(
            "the signing secret comes from AWE_JWT_SECRET; set a new value there and restart"
        )
    path = secret_path(settings)
    with _lock:
        _write(path, secrets.token_urlsafe(SECRET_BYTES))
        _cache.pop(str(path), None)
    return path
