"""Reading what pages send: filters from query strings and forms, times from ``datetime-local``
inputs (UTC), the run filter they make, and the query string that keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from awe.core.errors import ValidationFailed
from awe.engine import states
from awe.engine.listing import RunFilter
from awe.services import projects
from awe.services import runs as run_service
from awe.services.tokens import Principal
from awe.storage.database import Database

PAGE_SIZE = 50


def parse_time(value: str | None, name: str) -> datetime | None:
    """A time from a form (``2026-12-01T10:30``, seconds or an offset optional; UTC unless it
    says otherwise); ValidationFailed naming the field when it is not one."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed(
            f"{name}: {value!r} is not a time; write it like 2026-12-01T10:30 (UTC)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RunQuery:
    """The runs list's filters, as they travel in the URL."""

    statuses: tuple[str, ...] = ()
    workflow: str = ""
    project: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(
        cls,
        statuses: list[str],
        workflow: str | None,
        project: str | None,
        since: str | None,
        until: str | None,
    ) -> RunQuery:
        """From request values (statuses kept in the engine's order, unknown ones refused)."""
        for status in statuses:
            if status not in states.RUN_STATES:
                raise ValidationFailed(
                    f"status {status!r} is not one of {', '.join(states.RUN_STATES)}"
                )
        ordered = tuple(s for s in states.RUN_STATES if s in statuses)
        return cls(ordered, workflow or "", project or "", since or "", until or "")

    def pairs(self) -> list[tuple[str, str]]:
        """The query string's pairs (what is empty left out)."""
        found = [("status", s) for s in self.statuses]
        for name in ("workflow", "project", "since", "until"):
            value = getattr(self, name)
            if value:
                found.append((name, value))
        return found

    def query(self, **extra: str) -> str:
        """The URL query string of these filters, with ``extra`` pairs."""
        return urlencode(self.pairs() + [(k, v) for k, v in extra.items() if v])

    def where(self, db: Database, principal: Principal) -> RunFilter:
        """The run filter, within what ``principal`` may see."""
        scope = projects.visible(db, principal, self.project) if self.project else None
        return run_service.run_filter(
            db,
            principal,
            project=scope,
            statuses=self.statuses,
            workflow=self.workflow or None,
            created_after=parse_time(self.since, "from"),
            created_before=parse_time(self.until, "until"),
        )
