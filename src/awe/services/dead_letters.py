"""The dead-letter queue as the web UI pages it: grouped counts and keyset pages of dead steps,
within what the principal may see (requeueing is ``runs.requeue``)."""

from __future__ import annotations

from datetime import UTC, datetime

from awe.core.clock import utcnow
from awe.core.errors import ValidationFailed
from awe.engine import listing
from awe.engine.listing import DeadLetterFilter
from awe.engine.records import StepRecord
from awe.storage.database import Database


def page(
    db: Database, where: DeadLetterFilter, *, limit: int = 50, after: str | None = None
) -> list[tuple[StepRecord, str]]:
    """Dead steps oldest death first, each with its run's workflow; ``after`` is the cursor
    of the page before (see ``cursor``)."""
    return listing.dead_letters(db, where, utcnow(), limit=limit, after=_parse(after))


def cursor(step: StepRecord) -> str:
    """The cursor of the page that follows ``step``."""
    assert step.finished_at is not None
    return f"{step.finished_at.isoformat()}|{step.id}"


def _parse(value: str | None) -> tuple[datetime, str] | None:
    if not value:
        return None
    at, _, step_id = value.partition("|")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise ValidationFailed("the page cursor is not valid; start from the first page") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), step_id


def groups(db: Database, where: DeadLetterFilter) -> list[tuple[str, str, str, int]]:
    """How many dead steps by (category, queue, workflow), most first."""
    return listing.dead_letter_groups(db, where, utcnow())


def latest_death(db: Database, where: DeadLetterFilter) -> datetime | None:
    """When the last of the matching steps died (the moment a preview counts up to, by the
    database's own times: clocks of other hosts do not matter)."""
    return listing.latest_death(db, where, utcnow())


def count(db: Database, where: DeadLetterFilter) -> int:
    """How many dead steps match (what requeueing by this filter acts on)."""
    return sum(n for *_, n in groups(db, where))
