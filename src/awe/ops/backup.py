"""Backups: one archive per backup, with a manifest, verified by checksums and by a restore.

An archive ``awe-backup-<UTC time>.tar.gz`` holds ``manifest.json`` (awe version, backend,
migration revision, row counts, every file's sha256 and size, whether secrets are in it and
sealed), the database (SQLite: a copy made by the online backup API, switched to one file and
checked with ``integrity_check``; PostgreSQL: ``pg_dump -Fc`` of the same snapshot the row
counts were read in), and the secrets (the instance key, the CA and certificates), sealed to a
public key when one is given. It is written under a partial name and renamed when complete.
A ``<archive>.verified.json`` beside it records the last restore test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

from awe import __version__
from awe.core.config import Settings
from awe.core.crypto import key_path
from awe.core.errors import AweError, NotFound, ValidationFailed
from awe.ops import certs, pgtools, sealing
from awe.storage import migrate
from awe.storage.database import Database, sqlite_driver

FORMAT = 1
PREFIX = "awe-backup-"
SUFFIX = ".tar.gz"
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/awe.db"
DUMP_MEMBER = "database/awe.dump"
SECRETS_MEMBER = "secrets.tar"
SEALED_MEMBER = "secrets.sealed"
VERIFIED = ".verified.json"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Backup:
    """An archive and what its manifest says."""

    path: Path
    manifest: dict[str, Any]
    verified: dict[str, Any] | None

    @property
    def name(self) -> str:
        """The archive's file name."""
        return self.path.name

    @property
    def created_at(self) -> datetime:
        """When it was made."""
        return datetime.fromisoformat(self.manifest["created_at"])

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.path.stat().st_size,
            "created_at": self.manifest["created_at"],
            "backend": self.manifest["backend"],
            "revision": self.manifest["revision"],
            "secrets": self.manifest["secrets"],
            "verified": self.verified,
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def table_counts(conn: Any, names: list[str]) -> dict[str, int]:
    """Rows of each named table, over a SQLAlchemy connection."""
    quote = conn.dialect.identifier_preparer.quote
    return {
        name: int(conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar_one())  # noqa: S608
        for name in sorted(names)
    }


def _sqlite_copy(db: Database, target: Path) -> dict[str, int]:
    """An online copy of the SQLite database in one file, checked; its row counts."""
    source = db.engine.url.database
    assert source is not None
    module, _ = sqlite_driver()
    reader, writer = module.connect(source), module.connect(str(target))
    try:
        reader.backup(writer)
    finally:
        reader.close()
    try:
        writer.execute("PRAGMA journal_mode=DELETE")
        problems = [row[0] for row in writer.execute("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            raise AweError(f"the copy of the database is not sound: {'; '.join(problems[:3])}")
        names = [
            r[0]
            for r in writer.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        ]
        quote = '"{}"'.format
        counts = {
            n: int(writer.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0])  # noqa: S608
            for n in sorted(names)
        }
    finally:
        writer.close()
    return counts


def _postgres_dump(db: Database, target: Path) -> dict[str, int]:
    """``pg_dump -Fc`` of one snapshot, and the row counts read in that same snapshot."""
    url = db.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    snapshot_reads = db.engine.connect().execution_options(
        isolation_level="REPEATABLE READ", postgresql_readonly=True
    )
    with snapshot_reads as conn:
        # The first statement opens the repeatable-read transaction: the exported snapshot,
        # the row counts and pg_dump all see the same moment.
        snapshot = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
        major = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
        tool = pgtools.find("pg_dump", major)
        counts = table_counts(conn, inspect(conn).get_table_names())
        args, env = pgtools.connection(url)
        database = str(db.engine.url.database)
        pgtools.run(
            [str(tool), "--format=custom", "--no-owner", "--no-privileges",
             f"--snapshot={snapshot}", "--file", str(target), *args, "--dbname", database],
            env,
            what="pg_dump",
        )  # fmt: skip
        conn.rollback()
    return counts


def secret_files(settings: Settings) -> list[tuple[str, Path]]:
    """The files a backup's secrets are: (name in the archive, path)."""
    found: list[tuple[str, Path]] = []
    key = key_path(settings)
    if key.is_file():
        found.append((f"secrets/{key.name}", key))
    folder = certs.folder_of(settings.home)
    if folder.is_dir():
        found += [(f"certs/{p.name}", p) for p in sorted(folder.iterdir()) if p.is_file()]
    return found


def _secrets_tar(files: list[tuple[str, Path]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, path in files:
            archive.add(str(path), arcname=name, recursive=False)
    return buffer.getvalue()


def create(
    db: Database,
    settings: Settings,
    *,
    dest: Path | None = None,
    secrets: bool = True,
    encrypt_to: Path | None = None,
    now: datetime | None = None,
) -> Backup:
    """Make a backup archive in ``dest`` (default: AWE_BACKUP_DIR or $AWE_HOME/backups)."""
    moment = now or datetime.now(UTC)
    folder = dest or settings.effective_backup_dir
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    public = sealing.load_public(encrypt_to) if encrypt_to is not None else None
    status = migrate.status(db)
    known = {r.revision for r in migrate.history()}
    if len(status.current) != 1 or status.current[0] not in known:
        raise ValidationFailed(
            f"the database is at {', '.join(status.current) or 'no revision'}, which this awe"
            " does not know: back it up with the awe that set it up"
        )
    name = f"{PREFIX}{moment:%Y%m%dT%H%M%S%fZ}{SUFFIX}"
    with tempfile.TemporaryDirectory(prefix=".awe-backup-", dir=folder) as scratch:
        work = Path(scratch)
        files: list[tuple[str, Path]] = []
        if db.is_sqlite:
            copy = work / "awe.db"
            counts = _sqlite_copy(db, copy)
            files.append((SQLITE_MEMBER, copy))
        else:
            dump = work / "awe.dump"
            counts = _postgres_dump(db, dump)
            files.append((DUMP_MEMBER, dump))
        found = secret_files(settings) if secrets else []
        if found:
            bundle = _secrets_tar(found)
            member = SEALED_MEMBER if public is not None else SECRETS_MEMBER
            blob = sealing.seal(public, bundle) if public is not None else bundle
            (work / member).write_bytes(blob)
            files.append((member, work / member))
        manifest = {
            "format": FORMAT,
            "awe_version": __version__,
            "backend": "sqlite" if db.is_sqlite else "postgresql",
            "revision": status.current[0] if status.current else None,
            "created_at": moment.isoformat(),
            "host": socket.gethostname(),
            "tables": counts,
            "files": [
                {"name": n, "sha256": _sha256(p), "size": p.stat().st_size} for n, p in files
            ],
            "secrets": {
                "included": bool(found),
                "encrypted": public is not None and bool(found),
                "recipient": sealing.fingerprint(public) if public is not None and found else None,
                "files": [n for n, _ in found],
                "instance_key": (
                    "environment (AWE_SECRET_KEY: not in the backup)"
                    if settings.secret_key is not None
                    else (
                        "included"
                        if any(n.startswith("secrets/") for n, _ in found)
                        else "not included"
                    )
                ),
            },
        }
        partial = folder / f".{name}.partial"
        # Private from the first byte: the archive may hold the instance key and the CA's key.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(moment.timestamp()), 0o600
            archive.addfile(info, io.BytesIO(data))
            for member, path in files:
                archive.add(str(path), arcname=member, recursive=False)
        final = folder / name
        partial.rename(final)
    return Backup(final, manifest, None)


def _manifest_of(archive: tarfile.TarFile, path: Path) -> dict[str, Any]:
    first = archive.next()
    if first is None or first.name != MANIFEST:
        raise ValidationFailed(
            f"{path.name} is not an awe backup: it does not start with {MANIFEST}"
        )
    handle = archive.extractfile(first)
    assert handle is not None
    manifest: dict[str, Any] = json.loads(handle.read())
    if manifest.get("format") != FORMAT:
        raise ValidationFailed(
            f"{path.name}: backup format {manifest.get('format')} is not {FORMAT}"
        )
    return manifest


def read(path: Path) -> Backup:
    """A backup's manifest (and last verification), without checking its files."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            manifest = _manifest_of(archive, path)
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, ValidationFailed):
            raise
        raise ValidationFailed(f"{path.name} cannot be read as a backup: {exc}") from None
    sidecar = path.with_name(path.name + VERIFIED)
    verified = json.loads(sidecar.read_text()) if sidecar.exists() else None
    return Backup(path, manifest, verified)


@contextmanager
def unpacked(path: Path) -> Iterator[tuple[Backup, Path]]:
    """The archive checked file by file against its manifest and unpacked in a private
    scratch folder; ValidationFailed (nothing unpacked is kept) for a truncated or changed
    archive, a missing or an unexpected file."""
    backup = read(path)
    expected = {f["name"]: f for f in backup.manifest["files"]}
    with tempfile.TemporaryDirectory(prefix=".awe-restore-", dir=path.parent) as scratch:
        work = Path(scratch)
        seen: set[str] = set()
        try:
            with tarfile.open(path, "r:gz") as archive:
                first = True
                for member in archive:
                    if first and member.name == MANIFEST:  # read by read() above
                        first = False
                        continue
                    if member.name not in expected or not member.isfile():
                        raise ValidationFailed(
                            f"{path.name} holds {member.name!r}, which its manifest does not list"
                        )
                    handle = archive.extractfile(member)
                    assert handle is not None
                    target = work / member.name.replace("/", "__")
                    digest = hashlib.sha256()
                    with target.open("wb") as out:
                        while block := handle.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
                    listed = expected[member.name]
                    if (
                        digest.hexdigest() != listed["sha256"]
                        or target.stat().st_size != listed["size"]
                    ):
                        raise ValidationFailed(
                            f"{path.name}: {member.name} does not match its checksum"
                            " (changed or damaged)"
                        )
                    seen.add(member.name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ValidationFailed(f"{path.name} is damaged or truncated: {exc}") from None
        missing = sorted(set(expected) - seen)
        if missing:
            raise ValidationFailed(f"{path.name} lacks {', '.join(missing)} (truncated?)")
        yield backup, work


def member_path(work: Path, member: str) -> Path:
    """Where :func:`unpacked` put a member."""
    return work / member.replace("/", "__")


def listed(folder: Path) -> list[Backup]:
    """The backups in a folder, newest first (archives that do not read are left out)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{PREFIX}*{SUFFIX}"):
        try:
            found.append(read(path))
        except ValidationFailed:
            continue
    return sorted(found, key=lambda b: b.created_at, reverse=True)


def find(folder: Path, name: str) -> Path:
    """A backup by path, by file name in the folder, or 'latest'."""
    if name == "latest":
        found = listed(folder)
        if not found:
            raise NotFound(f"no backup in {folder}: awe backup create makes one")
        return found[0].path
    given = Path(name)
    # A bare name is a backup in the folder first; a path is taken as it is.
    order = (folder / name, given) if given.name == name else (given, folder / name)
    for candidate in order:
        if candidate.is_file():
            return candidate
    raise NotFound(f"no backup {name} (awe backup list shows them)")


def mark_verified(backup: Backup, report: dict[str, Any], now: datetime | None = None) -> None:
    """Record a passed restore test beside the archive."""
    record = {
        "verified_at": (now or datetime.now(UTC)).isoformat(),
        "method": "restore-test",
        **report,
    }
    sidecar = backup.path.with_name(backup.path.name + VERIFIED)
    sidecar.write_text(json.dumps(record, indent=2))
    sidecar.chmod(0o600)


def prune(
    folder: Path, *, keep_last: int, keep_days: int, now: datetime | None = None
) -> tuple[list[Backup], list[Backup]]:
    """Which backups to delete and which to keep: kept are the newest ``keep_last``, those
    younger than ``keep_days``, and always the newest verified one."""
    moment = now or datetime.now(UTC)
    found = listed(folder)
    verified = [b for b in found if b.verified]
    keep = {b.path for b in found[:keep_last]}
    keep |= {b.path for b in found if (moment - b.created_at).days < keep_days}
    if verified:
        keep.add(verified[0].path)
    return [b for b in found if b.path not in keep], [b for b in found if b.path in keep]


def delete(backup: Backup) -> None:
    """Remove an archive and its verification record."""
    backup.path.unlink(missing_ok=True)
    backup.path.with_name(backup.path.name + VERIFIED).unlink(missing_ok=True)
