"""Cron expressions and timezones: when a schedule fires, and whether it can.

Apart from the scheduler so that checking a workflow file (``awe validate``) needs neither the
database nor the scheduler's machinery.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from awe.core.errors import ValidationFailed


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first fire time of ``cron`` (in ``timezone``) strictly after ``after``, in UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    fire: datetime = croniter(cron, local).get_next(datetime)
    return fire.astimezone(ZoneInfo("UTC"))


def check_cron(cron: str, timezone: str) -> None:
    """Raise ValidationFailed for a cron expression or timezone croniter and zoneinfo refuse."""
    if not croniter.is_valid(cron):
        raise ValidationFailed(
            f"schedule {cron!r} is not a cron expression (5 fields like '0 3 * * *', or @daily)"
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"timezone {timezone!r} is not an IANA name like 'Europe/Paris'"
        ) from None
