"""``awe backup`` as a use case: create, list, verify (by checksums, and by a restore test),
restore (never while workers are live unless forced, after a backup of what it replaces),
and prune (never the newest verified backup)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from awe.core import crypto
from awe.core.config import Settings
from awe.core.errors import AweError, Conflict, ValidationFailed
from awe.engine.queue_stats import live_workers
from awe.ops import backup, erasure_ledger
from awe.ops import restore as restoring
from awe.ops.backup import Backup
from awe.storage.database import Database

__all__ = ["Backup", "create", "find", "listed", "prune", "restore", "verify"]


def folder(settings: Settings) -> Path:
    """Where backups are kept."""
    return settings.effective_backup_dir


def create(
    db: Database,
    settings: Settings,
    *,
    dest: Path | None = None,
    secrets: bool = True,
    encrypt_to: Path | None = None,
) -> Backup:
    """Make a backup archive."""
    return backup.create(db, settings, dest=dest, secrets=secrets, encrypt_to=encrypt_to)


def listed(settings: Settings, dest: Path | None = None) -> list[Backup]:
    """The backups, newest first."""
    return backup.listed(dest or folder(settings))


def find(settings: Settings, name: str, dest: Path | None = None) -> Path:
    """A backup by path, name or 'latest'."""
    return backup.find(dest or folder(settings), name)


def verify(db: Database, settings: Settings, path: Path, *, restore_test: bool) -> dict[str, Any]:
    """Check every file against the manifest; with ``restore_test``, also restore into a
    scratch database and check it, and record the backup as verified when that passed.
    ValidationFailed when the archive or the restored copy is not right."""
    with backup.unpacked(path) as (found, _):
        restoring.check_revision(found.manifest)
        result: dict[str, Any] = {"backup": found.name, "checksums": "ok", "restore_test": None}
    if restore_test:
        tested = restoring.restore_test(db, settings, path)
        result["restore_test"] = tested
        if not tested["ok"]:
            raise ValidationFailed(
                f"{found.name} restored, but the copy is not right: {_problems(tested)}"
            )
        backup.mark_verified(found, tested)
    return result


def _problems(tested: dict[str, Any]) -> str:
    parts = [
        f"{t} has {b} rows, the manifest says {a}"
        for t, (a, b) in tested["count_mismatches"].items()
    ]
    parts += tested["schema_differences"][:3]
    return "; ".join(parts[:5])


@dataclass(frozen=True)
class RestorePlan:
    """What a restore will do, for the confirmation."""

    path: Path
    manifest: dict[str, Any]
    live_workers: int


def plan_restore(db: Database, settings: Settings, path: Path, *, force: bool) -> RestorePlan:
    """Check the backup can replace the data: sound, a known revision, and (unless forced)
    no live worker. Changes nothing."""
    with backup.unpacked(path) as (found, _):
        restoring.check_revision(found.manifest)
        manifest = found.manifest
    live = live_workers(db)
    if live and not force:
        raise Conflict(
            f"{live} worker(s) are live: stop them first (their steps would run on data that"
            " is replaced under them), or pass --force"
        )
    return RestorePlan(path, manifest, live)


def restore(
    db: Database,
    settings: Settings,
    plan: RestorePlan,
    *,
    take_backup: bool = True,
    with_secrets: bool = True,
    private_key: Path | None = None,
    encrypt_to: Path | None = None,
) -> dict[str, Any]:
    """Back up the current data (unless told not to; sealed to ``encrypt_to`` when given),
    then restore, then re-apply the erasures made after the backup was taken (the erasure
    ledger, read before the restore can put back another instance key); once it succeeded,
    what it moved aside is deleted when that backup exists (kept otherwise, and listed)."""
    from awe.services import erasure  # erasure reads backups for its receipts

    taken = datetime.fromisoformat(plan.manifest["created_at"])
    ledger = erasure_ledger.read(settings)  # opened with the key in use now
    owed = erasure_ledger.due(ledger, taken)
    key_before = crypto.instance_key(settings).fingerprint
    before = backup.create(db, settings, encrypt_to=encrypt_to) if take_backup else None
    try:
        done = restoring.restore(
            db, settings, plan.path, with_secrets=with_secrets, private_key=private_key
        )
    except AweError as exc:
        if before is None:
            raise
        raise type(exc)(f"{exc.message} (the data before the restore is in {before.path})") from exc
    crypto.forget_cached()  # the restore may have put back another instance key file
    if ledger.entries and crypto.instance_key(settings).fingerprint != key_before:
        erasure_ledger.reseal(settings, ledger)
    result = done.as_dict()
    result["erasures"] = erasure.reapply_entries(db, settings, owed)
    result["backup_before"] = str(before.path) if before else None
    if before is not None:
        restoring.forget_aside(done)
        result["aside"] = []
    return result


def prune(
    settings: Settings, *, keep_last: int, keep_days: int, dry_run: bool, dest: Path | None = None
) -> tuple[list[Backup], list[Backup]]:
    """Delete what the policy does not keep (unless a dry run); (deleted, kept)."""
    if keep_last < 1:
        raise ValidationFailed("--keep-last must be 1 or more")
    drop, keep = backup.prune(
        dest or folder(settings), keep_last=keep_last, keep_days=keep_days, now=datetime.now(UTC)
    )
    if not dry_run:
        for found in drop:
            backup.delete(found)
    return drop, keep
