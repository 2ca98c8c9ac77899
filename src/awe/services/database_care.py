"""``awe db stats``, ``awe db vacuum`` and ``awe db downgrade`` as use cases."""

from __future__ import annotations

from typing import Any

from awe.core.config import Settings
from awe.ops import backup, dbstats
from awe.storage import migrate
from awe.storage.database import Database


def stats(db: Database) -> dict[str, Any]:
    """Sizes, largest tables and indexes, dead rows, index use, slow statements."""
    return dbstats.stats(db)


def vacuum(db: Database, *, analyze: bool, full: bool) -> dict[str, Any]:
    """Reclaim space and refresh the planner's statistics."""
    return dbstats.vacuum(db, analyze=analyze, full=full)


def reverting(db: Database, revision: str) -> list[str]:
    """The migrations a downgrade to ``revision`` reverts, newest first."""
    return migrate.reverting(db, revision)


def downgrade(
    db: Database, settings: Settings, revision: str, *, take_backup: bool
) -> dict[str, Any]:
    """Revert migrations down to ``revision``, after a backup of what is there (unless told not
    to, or nothing would be reverted): what was reverted, the backup, the revision now."""
    reverted = migrate.reverting(db, revision)
    made = backup.create(db, settings) if take_backup and reverted else None
    migrate.downgrade(db, revision)
    return {
        "reverted": reverted,
        "backup_before": str(made.path) if made is not None else None,
        "current": list(migrate.status(db).current),
    }
