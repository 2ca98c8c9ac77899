"""``awe certs`` as a use case: the installation's CA and leaf certificates in
``$AWE_HOME/certs``, and their check report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from awe.core.config import Settings
from awe.ops import certs, checks_tls
from awe.ops.certs import CertInfo, Kind
from awe.ops.report import Report

__all__ = [
    "CertInfo", "Kind", "check", "folder", "init", "issue", "key_matches", "listed", "rotate",
]  # fmt: skip


def folder(settings: Settings) -> Path:
    """Where the certificates are."""
    return certs.folder_of(settings.home)


def init(settings: Settings, *, days: int = certs.CA_DAYS) -> CertInfo:
    """Make the CA (Conflict when there is one)."""
    return certs.init_ca(folder(settings), days=days)


def issue(
    settings: Settings, name: str, *, sans: list[str], kind: Kind, days: int = certs.LEAF_DAYS
) -> CertInfo:
    """Issue or re-issue leaf ``name``."""
    return certs.issue(folder(settings), name, sans=sans, kind=kind, days=days)


def listed(settings: Settings) -> list[CertInfo]:
    """The CA and every leaf."""
    return certs.listed(folder(settings))


def rotate(settings: Settings, name: str | None) -> list[CertInfo]:
    """Re-issue leaf ``name``; ``ca``: a new CA (the old one stays trusted); None: every leaf,
    then the previous CA is dropped from the bundle."""
    if name is None:
        return certs.rotate_all(folder(settings))
    if name == certs.CA_NAME:
        return [certs.rotate_ca(folder(settings))]
    return [certs.rotate_leaf(folder(settings), name)]


def key_matches(cert: Path, key: Path) -> bool:
    """Whether ``key`` is the private key of certificate ``cert``."""
    return certs.key_matches(cert, key)


def check(settings: Settings, *, warn_days: int) -> Report:
    """One check per certificate."""
    return checks_tls.report(settings, datetime.now(UTC), warn_days=warn_days)
