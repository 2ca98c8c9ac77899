"""Encrypting a backup's secrets to a public key, so that only the holder of the private key
reads them: a random AES-256-GCM key seals the data, and is itself sealed to an X25519 key
(ephemeral Diffie-Hellman, HKDF) or an RSA key (OAEP with SHA-256). Keys are PEM files, made
for instance with ``openssl genpkey -algorithm X25519 -out backup.key`` and
``openssl pkey -in backup.key -pubout -out backup.pub``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from awe.core.errors import ValidationFailed

MAGIC = b"AWE-SEALED-1\n"
_INFO = b"awe backup secrets"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _raw(public: Any) -> bytes:
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def fingerprint(public: Any) -> str:
    """A short name of a public key (SHA-256 of its SubjectPublicKeyInfo)."""
    return hashlib.sha256(_raw(public)).hexdigest()[:32]


def load_public(path: Path) -> Any:
    """An X25519 or RSA public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, OSError) as exc:
        raise ValidationFailed(f"{path} is not a PEM public key ({exc})") from None
    if not isinstance(key, x25519.X25519PublicKey | rsa.RSAPublicKey):
        raise ValidationFailed(f"{path}: give an X25519 or RSA public key")
    return key


def load_private(path: Path) -> Any:
    """An X25519 or RSA private key from a PEM file (unencrypted)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ValidationFailed(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, x25519.X25519PrivateKey | rsa.RSAPrivateKey):
        raise ValidationFailed(f"{path}: give an X25519 or RSA private key")
    return key


def _wrap_key(shared: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(shared)


def seal(public: Any, data: bytes) -> bytes:
    """``data`` sealed to ``public``."""
    data_key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    header: dict[str, str] = {"recipient": fingerprint(public), "nonce": _b64(nonce)}
    if isinstance(public, x25519.X25519PublicKey):
        ephemeral = x25519.X25519PrivateKey.generate()
        wrap_nonce = os.urandom(12)
        wrapping = _wrap_key(ephemeral.exchange(public))
        header |= {
            "alg": "x25519-hkdf-sha256-aes256gcm",
            "ephemeral": _b64(_raw(ephemeral.public_key())),
            "wrap_nonce": _b64(wrap_nonce),
            "wrapped_key": _b64(AESGCM(wrapping).encrypt(wrap_nonce, data_key, None)),
        }
    else:
        oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        header |= {
            "alg": "rsa-oaep-sha256-aes256gcm",
            "wrapped_key": _b64(public.encrypt(data_key, oaep)),
        }
    line = json.dumps(header, sort_keys=True).encode()
    return MAGIC + line + b"\n" + AESGCM(data_key).encrypt(nonce, data, line)


def recipient(blob: bytes) -> str:
    """The fingerprint of the key a sealed blob is for."""
    return str(_header(blob)[0]["recipient"])


def _header(blob: bytes) -> tuple[dict[str, str], bytes, bytes]:
    if not blob.startswith(MAGIC):
        raise ValidationFailed("these secrets are not sealed by awe backup")
    line, _, body = blob[len(MAGIC) :].partition(b"\n")
    return json.loads(line), line, body


def open_sealed(private: Any, blob: bytes) -> bytes:
    """The data sealed to ``private``'s public key; ValidationFailed for another key or a
    changed blob."""
    header, line, body = _header(blob)
    if header["recipient"] != fingerprint(private.public_key()):
        raise ValidationFailed(
            f"these secrets are sealed to key {header['recipient']}, not to"
            f" {fingerprint(private.public_key())}: give the private key of the public key used"
        )
    try:
        if header["alg"].startswith("x25519"):
            ephemeral = x25519.X25519PublicKey.from_public_bytes(
                serialization.load_der_public_key(
                    base64.b64decode(header["ephemeral"])
                ).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            )
            wrapping = _wrap_key(private.exchange(ephemeral))
            data_key = AESGCM(wrapping).decrypt(
                base64.b64decode(header["wrap_nonce"]),
                base64.b64decode(header["wrapped_key"]),
                None,
            )
        else:
            oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
            data_key = private.decrypt(base64.b64decode(header["wrapped_key"]), oaep)
        return AESGCM(data_key).decrypt(base64.b64decode(header["nonce"]), body, line)
    except (InvalidTag, ValueError) as exc:
        raise ValidationFailed(
            f"the sealed secrets do not open: changed or damaged ({exc})"
        ) from None
