"""Retention for the CLI and the API: what would go, and deleting it (the scheduler's leader
runs the same passes by itself every ``AWE_RETENTION_INTERVAL``; see awe.engine.retention)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.engine import retention
from awe.engine.retention import Counts, Cutoffs
from awe.services.audit import Actor
from awe.services.tokens import operator_actor
from awe.storage.database import Database

__all__ = ["Counts", "Cutoffs", "cutoffs", "plan", "run"]


def cutoffs(settings: Settings, older_than: timedelta | None = None) -> Cutoffs:
    """The cutoffs now: each table's own setting, or ``older_than`` for every table that is
    not kept forever."""
    return Cutoffs.of(settings, utcnow(), older_than)


def plan(db: Database, settings: Settings, *, older_than: timedelta | None = None) -> Counts:
    """How many rows of each table a pass would delete now."""
    return retention.count(db, cutoffs(settings, older_than))


def run(
    db: Database,
    settings: Settings,
    *,
    older_than: timedelta | None = None,
    progress: Callable[[str, int], None] | None = None,
    actor: Actor | None = None,
) -> Counts:
    """Delete them, batch by batch, to the end; the audit entry names ``actor`` (default:
    the operator of the local CLI)."""
    who = actor or operator_actor()
    return retention.run(
        db,
        cutoffs(settings, older_than),
        batch_size=settings.retention_batch_size,
        progress=progress,
        actor=(who.type, who.id),
    )
