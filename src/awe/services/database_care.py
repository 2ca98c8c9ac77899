"""``awe db stats`` and ``awe db vacuum`` as use cases."""

from __future__ import annotations

from typing import Any

from awe.ops import dbstats
from awe.storage.database import Database


def stats(db: Database) -> dict[str, Any]:
    """Sizes, largest tables and indexes, dead rows, index use, slow statements."""
    return dbstats.stats(db)


def vacuum(db: Database, *, analyze: bool, full: bool) -> dict[str, Any]:
    """Reclaim space and refresh the planner's statistics."""
    return dbstats.vacuum(db, analyze=analyze, full=full)
