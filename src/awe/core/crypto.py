"""The instance key: what seals project secrets and, in privacy mode, stored payloads.

The key is ``AWE_SECRET_KEY`` (any text of 32 characters or more) or a 0600 file,
``$AWE_HOME/secrets/instance_key``, made on first use. Every machine of one installation must
have the same key: a worker elsewhere cannot open what another sealed. Sealing is AES-256-GCM
(``cryptography``), with a purpose string bound in as associated data, so a sealed value copied
into another column or another secret's row does not open there.

Sub-keys are derived with HKDF for each use: sealing, reference tags, PII placeholders.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from awe.core.config import Settings
from awe.core.errors import AweError, ConfigurationError, PermissionDenied

#: Sealed values start with this, so a reader knows what it holds (and which format).
PREFIX = "awe1:"
MIN_KEY_CHARS = 32
_cache: dict[str, InstanceKey] = {}
_lock = threading.Lock()


class SealBroken(AweError):
    """A sealed value could not be opened: it was sealed with another instance key, or changed."""

    exit_code = 3
    http_status = 500
    code = "sealed"


def _derive(material: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        material
    )


class InstanceKey:
    """Seal and open values; tag values with keyed hashes."""

    def __init__(self, material: bytes, *, source: str) -> None:
        self.source = source
        self._aead = AESGCM(_derive(material, "awe seal v1"))
        self._tag_key = _derive(material, "awe tag v1")
        #: Identifies the key without revealing it (to detect machines with different keys).
        self.fingerprint = hashlib.sha256(_derive(material, "awe fingerprint v1")).hexdigest()[:16]

    def seal(self, plaintext: bytes, *, purpose: str) -> str:
        """``plaintext`` encrypted and authenticated for ``purpose``, as ASCII text."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, purpose.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, *, purpose: str) -> bytes:
        """What :meth:`seal` sealed for the same ``purpose``; SealBroken otherwise."""
        if not token.startswith(PREFIX):
            raise SealBroken("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX) :].encode("ascii"))
            return self._aead.decrypt(raw[:12], raw[12:], purpose.encode())
        except (InvalidTag, ValueError):
            raise SealBroken(
                f"a sealed value ({purpose}) does not open with this instance key ({self.source}):"
                " every machine of an installation needs the same AWE_SECRET_KEY"
            ) from None

    def tag(self, text: str, *, length: int = 16) -> str:
        """A keyed hash of ``text`` (hex): stable for this key, unguessable without it."""
        return hmac.new(self._tag_key, text.encode(), hashlib.sha256).hexdigest()[:length]


def key_path(settings: Settings) -> Path:
    """Where the instance key file lives."""
    return settings.home / "secrets" / "instance_key"


def write_private(path: Path, value: str, *, replace: bool = True) -> bool:
    """Write ``value`` to a 0600 file in a 0700 folder, atomically (readers see old or new).

    With ``replace`` False, an existing file is kept (two processes creating it at once end up
    with the same one); returns whether this call wrote it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if it exists: the first one made wins
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def read_private(path: Path) -> str:
    """The text of a file that must be readable by its owner only."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise PermissionDenied(
            f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600 it"
        )
    return path.read_text(encoding="utf-8").strip()


def forget_cached() -> None:
    """Drop the keys read so far: the next call reads the file again (after a restore put
    back another key file)."""
    with _lock:
        _cache.clear()


def instance_key(settings: Settings) -> InstanceKey:
    """The instance key of these settings (the file is created, 0600, when there is none)."""
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
        if len(value) < MIN_KEY_CHARS:
            raise ConfigurationError(
                f"AWE_SECRET_KEY must be at least {MIN_KEY_CHARS} characters long"
            )
        cache_key = "env:" + hashlib.sha256(value.encode()).hexdigest()
        source = "AWE_SECRET_KEY"
    else:
        path = key_path(settings)
        cache_key = "file:" + str(path.resolve())
        source = str(path)
    with _lock:
        if cache_key in _cache:
            return _cache[cache_key]
        if settings.secret_key is None:
            if not path.exists():
                write_private(path, secrets.token_urlsafe(48), replace=False)
            value = read_private(path)
        key = InstanceKey(value.encode(), source=source)
        _cache[cache_key] = key
        return key
