"""Restoring a backup, and the restore test that proves one can be restored.

A restore checks the whole archive first and changes nothing when it fails. SQLite: the live
file (after a WAL checkpoint) is moved aside and the backup's copy moved in, atomically by
rename; any failure moves the old file back. PostgreSQL: ``pg_restore --clean
--single-transaction``, so the old data stays until the new data has committed. Secrets are put
back the same way (old files aside until the end). A backup from an older revision is brought
to head afterwards; one from a revision this awe does not know is refused.
"""

from __future__ import annotations

import io
import os
import secrets as random
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from awe.core.config import Settings
from awe.core.crypto import instance_key, key_path
from awe.core.errors import AweError, ValidationFailed
from awe.ops import backup, certs, pgtools, sealing
from awe.storage import instance_state, migrate
from awe.storage.database import Database, create_database, sqlite_driver


@dataclass
class Restored:
    """What a restore did."""

    backup: str
    revision: str
    upgraded_to: str | None = None
    secrets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: What was moved aside (the old data), to delete once a backup of it exists.
    aside: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return self.__dict__.copy()


def check_revision(manifest: dict[str, Any]) -> None:
    """Refuse a backup taken at a migration this awe does not know (a newer awe's)."""
    known = {r.revision for r in migrate.history()}
    if manifest["revision"] not in known:
        raise ValidationFailed(
            f"the backup is at migration {manifest['revision']}, which this awe does not know"
            " (it was taken by a newer awe): restore it with that version"
        )


def _secret_bundle(work: Path, manifest: dict[str, Any], private_key: Path | None) -> bytes | None:
    info = manifest["secrets"]
    if not info["included"]:
        return None
    if info["encrypted"]:
        if private_key is None:
            raise ValidationFailed(
                f"the backup's secrets are sealed to key {info['recipient']}:"
                " pass --decrypt-with PRIVATE_KEY (or --no-secrets to restore the data only)"
            )
        blob = backup.member_path(work, backup.SEALED_MEMBER).read_bytes()
        return sealing.open_sealed(sealing.load_private(private_key), blob)
    return backup.member_path(work, backup.SECRETS_MEMBER).read_bytes()


def _secret_target(settings: Settings, name: str) -> Path:
    area, _, file_name = name.partition("/")
    if "/" in file_name or file_name in ("", ".", ".."):
        raise ValidationFailed(f"the backup names a secret file {name!r} awe does not write")
    if area == "secrets":
        return key_path(settings).parent / file_name
    if area == "certs":
        return certs.folder_of(settings.home) / file_name
    raise ValidationFailed(f"the backup names a secret file {name!r} awe does not write")


def _put_secrets(
    settings: Settings,
    bundle: bytes,
    stamp: str,
    undo: list[Callable[[], None]],
    aside: list[str],
) -> list[str]:
    written = []
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            target = _secret_target(settings, member.name)
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target.parent.chmod(0o700)
            if target.exists():
                moved = target.with_name(f"{target.name}.before-restore-{stamp}")
                os.replace(target, moved)
                aside.append(str(moved))
                undo.append(lambda t=target, a=moved: os.replace(a, t))  # type: ignore[misc]
            else:
                undo.append(lambda t=target: t.unlink(missing_ok=True))  # type: ignore[misc]
            fresh = target.with_name(f".{target.name}.{random.token_hex(4)}")
            descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(data)
            os.replace(fresh, target)
            written.append(member.name)
    return written


def _sqlite_swap(
    db: Database, copy: Path, stamp: str, undo: list[Callable[[], None]], aside: list[str]
) -> None:
    live = Path(str(db.engine.url.database))
    module, _ = sqlite_driver()
    if live.exists():
        handle = module.connect(str(live))
        try:
            handle.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            handle.close()
    db.dispose()
    incoming = live.with_name(f".{live.name}.restoring")
    incoming.unlink(missing_ok=True)
    descriptor = os.open(incoming, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out, copy.open("rb") as source:
        shutil.copyfileobj(source, out)
    for suffix in ("", "-wal", "-shm"):
        current = live.with_name(live.name + suffix)
        if current.exists():
            moved = live.with_name(f"{live.name}{suffix}.before-restore-{stamp}")
            os.replace(current, moved)
            aside.append(str(moved))
            undo.append(lambda c=current, a=moved: os.replace(a, c))  # type: ignore[misc]
    os.replace(incoming, live)


def _pg_url(db: Database, database: str | None = None) -> tuple[str, str]:
    url = db.engine.url
    return url.render_as_string(hide_password=False), database or str(url.database)


def _pg_restore(db: Database, dump: Path, database: str | None = None) -> None:
    raw, name = _pg_url(db, database)
    with db.engine.connect() as conn:
        major = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    tool = pgtools.find("pg_restore", major)
    args, env = pgtools.connection(raw)
    pgtools.run(
        [str(tool), "--clean", "--if-exists", "--single-transaction", "--no-owner",
         "--no-privileges", "--exit-on-error", *args, "--dbname", name, str(dump)],
        env,
        what="pg_restore",
    )  # fmt: skip


def _pg_replace(db: Database, dump: Path, manifest: dict[str, Any], work: Path) -> None:
    """Replace the database's contents with the dump's in one transaction: tables the backup
    does not have (made by later migrations) are dropped, the dump's objects dropped and made
    again, all or nothing (``psql --single-transaction`` on ``pg_restore``'s script)."""
    raw, name = _pg_url(db)
    with db.engine.connect() as conn:
        major = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
        present = inspect(conn).get_table_names()
    args, env = pgtools.connection(raw)
    script = work / "restore.sql"
    pgtools.run(
        [str(pgtools.find("pg_restore", major)), "--clean", "--if-exists", "--no-owner",
         "--no-privileges", "--file", str(script), str(dump)],
        env,
        what="pg_restore",
    )  # fmt: skip
    extra = sorted(set(present) - set(manifest["tables"]))
    prelude = work / "prelude.sql"
    prelude.write_text("".join(f'DROP TABLE IF EXISTS "{t}" CASCADE;\n' for t in extra))
    pgtools.run(
        [str(pgtools.find("psql", major)), "--no-psqlrc", "--quiet", "--single-transaction",
         "--set", "ON_ERROR_STOP=1", *args, "--dbname", name,
         "--file", str(prelude), "--file", str(script)],
        env,
        what="psql (restoring)",
    )  # fmt: skip


def restore(
    db: Database,
    settings: Settings,
    path: Path,
    *,
    with_secrets: bool = True,
    private_key: Path | None = None,
) -> Restored:
    """Put the backup in place of the current data (the caller checked workers, asked, and
    took a backup first)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with backup.unpacked(path) as (found, work):
        manifest = found.manifest
        check_revision(manifest)
        backend = "sqlite" if db.is_sqlite else "postgresql"
        if manifest["backend"] != backend:
            raise ValidationFailed(
                f"the backup is of a {manifest['backend']} database; this awe uses {backend}"
            )
        bundle = _secret_bundle(work, manifest, private_key) if with_secrets else None
        undo: list[Callable[[], None]] = []
        result = Restored(backup=found.name, revision=manifest["revision"])
        try:
            if bundle is not None:
                result.secrets = _put_secrets(settings, bundle, stamp, undo, result.aside)
            if db.is_sqlite:
                copy = backup.member_path(work, backup.SQLITE_MEMBER)
                _sqlite_swap(db, copy, stamp, undo, result.aside)
            else:
                _pg_replace(db, backup.member_path(work, backup.DUMP_MEMBER), manifest, work)
                db.dispose()
        except BaseException:
            for step in reversed(undo):
                step()
            db.dispose()
            raise
    if not migrate.status(db).up_to_date:
        migrate.upgrade(db)
        result.upgraded_to = ",".join(migrate.status(db).current)
    result.warnings += _key_warnings(db, settings)
    return result


def forget_aside(restored: Restored) -> int:
    """Delete exactly what this restore moved aside (once a backup of the old data exists);
    how many files were removed."""
    removed = 0
    for name in restored.aside:
        path = Path(name)
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def _key_warnings(db: Database, settings: Settings) -> list[str]:
    with db.read() as conn:
        recorded = instance_state.get(conn, instance_state.INSTANCE_KEY_FINGERPRINT)
    if recorded is None:
        return []
    key = instance_key(settings)
    if key.fingerprint != recorded:
        return [
            f"the restored data was sealed with instance key {recorded}, and this machine uses"
            f" {key.fingerprint} ({key.source}): restore with its secrets, or set that key"
        ]
    return []


def restore_test(db: Database, settings: Settings, path: Path) -> dict[str, Any]:
    """Restore into a scratch database (a temporary SQLite file, or a temporary database on
    the same PostgreSQL server), bring it to head, check it against the models, and compare
    its row counts with the manifest's; the findings (``ok`` False says why)."""
    with backup.unpacked(path) as (found, work):
        manifest = found.manifest
        check_revision(manifest)
        if db.is_sqlite:
            copy = backup.member_path(work, backup.SQLITE_MEMBER)
            scratch = create_database(settings, url=f"sqlite:///{copy}")
            try:
                return _checked(scratch, manifest)
            finally:
                scratch.dispose()
        name = f"awe_verify_{random.token_hex(6)}"
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            try:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            except Exception as exc:  # noqa: BLE001 - the server's refusal is the reason
                raise AweError(
                    f"the restore test needs a scratch database and could not make one: {exc}"
                    " (give the database user CREATEDB)"
                ) from None
        try:
            _pg_restore(db, backup.member_path(work, backup.DUMP_MEMBER), name)
            url = make_url(_pg_url(db)[0]).set(database=name)
            scratch = create_database(settings, url=url.render_as_string(hide_password=False))
            try:
                return _checked(scratch, manifest)
            finally:
                scratch.dispose()
        finally:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _checked(scratch: Database, manifest: dict[str, Any]) -> dict[str, Any]:
    with scratch.read() as conn:
        counts = backup.table_counts(conn, list(manifest["tables"]))
    differing = {t: [n, counts.get(t)] for t, n in manifest["tables"].items() if counts.get(t) != n}
    if not migrate.status(scratch).up_to_date:
        migrate.upgrade(scratch)
    differences = migrate.differences(scratch)
    ok = not differing and not differences
    return {
        "ok": ok,
        "revision": manifest["revision"],
        "tables": len(counts),
        "rows": sum(counts.values()),
        "count_mismatches": differing,
        "schema_differences": differences,
    }
