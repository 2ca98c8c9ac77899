"""``awe doctor``: every check of an installation, by group, each with the command that fixes
what it finds; ``--fix`` repairs only what is safe to repair unattended.

A probe is a function of a :class:`Context` returning an :class:`~awe.ops.report.Outcome`;
probes that need the database raise :class:`~awe.ops.report.SkipCheck` when it did not answer,
so one outage is one failure and the rest say why they did not run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.errors import AweError, ValidationFailed
from awe.ops.report import CheckResult, Outcome, Report, SkipCheck, run_check
from awe.storage.database import Database

GROUPS = (
    "configuration", "secrets", "filesystem", "database", "engine", "ai", "tls", "backups",
)  # fmt: skip


@dataclass
class Context:
    """What probes read: the settings, the database (opened on first use), the time."""

    settings: Settings
    open_database: Callable[[], Database]
    now: datetime = field(default_factory=utcnow)
    #: Set by the reachability probe: None (not tried), or the reason it failed ("" if it did not).
    database_problem: str | None = None
    _db: Database | None = None

    @property
    def db(self) -> Database:
        """The database; SkipCheck when it did not answer."""
        if self.database_problem:
            raise SkipCheck(f"the database did not answer ({self.database_problem})")
        if self._db is None:
            try:
                opened = self.open_database()
                opened.ping()
            except AweError as exc:
                self.database_problem = exc.message
                raise SkipCheck(f"the database did not answer ({exc.message})") from None
            self._db, self.database_problem = opened, ""
        return self._db


@dataclass(frozen=True)
class Probe:
    """One check: its id, group, what it checks, and (when safe) how to repair what it finds."""

    id: str
    group: str
    title: str
    run: Callable[[Context], Outcome]
    #: Repairs and says what it changed ("" when there was nothing to change).
    repair: Callable[[Context], str] | None = None


def probes() -> list[Probe]:
    """Every probe, in the order of :data:`GROUPS`."""
    from awe.ops import (
        checks_ai,
        checks_backup,
        checks_db,
        checks_engine,
        checks_host,
        checks_tls,
    )

    found: list[Probe] = [
        *checks_host.PROBES,
        *checks_db.PROBES,
        *checks_engine.PROBES,
        *checks_ai.PROBES,
        *checks_tls.PROBES,
        *checks_backup.PROBES,
    ]
    return sorted(found, key=lambda p: GROUPS.index(p.group))


def select(
    available: Iterable[Probe], *, only: Iterable[str] = (), skip: Iterable[str] = ()
) -> list[Probe]:
    """The probes of the groups (or ids) in ``only`` (all when empty), less those in ``skip``.

    A name that is neither a group nor a probe id is refused with the names that exist.
    """
    listed = list(available)
    known = set(GROUPS) | {p.id for p in listed}
    wanted, unwanted = set(only), set(skip)
    unknown = sorted((wanted | unwanted) - known)
    if unknown:
        raise ValidationFailed(
            f"no check or group called {', '.join(unknown)}; groups: {', '.join(GROUPS)}"
            " (awe doctor --list-checks lists every check)"
        )
    return [
        p
        for p in listed
        if (not wanted or p.group in wanted or p.id in wanted)
        and p.group not in unwanted
        and p.id not in unwanted
    ]


def run(
    context: Context,
    chosen: Iterable[Probe],
    *,
    fix: bool = False,
    progress: Callable[[Probe], Any] | None = None,
) -> Report:
    """Run the probes in order; with ``fix``, repair what failed or warned where a probe can,
    then check again (the report shows the state after the repair and what was changed)."""
    results: list[CheckResult] = []
    for probe in chosen:
        if progress is not None:
            progress(probe)
        result = run_check(probe.id, probe.group, lambda p=probe: p.run(context))  # type: ignore[misc]
        if fix and probe.repair is not None and result.status in ("fail", "warn"):
            changed = run_check(probe.id, probe.group, lambda p=probe: _repaired(p, context))  # type: ignore[misc]
            if changed.status == "fail":
                result = _with(result, data={**result.data, "fix_failed": changed.message})
            else:
                again = run_check(probe.id, probe.group, lambda p=probe: p.run(context))  # type: ignore[misc]
                result = _with(again, data={**again.data, "fixed": changed.message})
        results.append(result)
    return Report.of(with_outage(context, results))


def with_outage(context: Context, results: list[CheckResult]) -> list[CheckResult]:
    """The results, with a failed ``db.reachable`` first when the database did not answer and
    no such check ran: checks skipped for an outage must not add up to a pass."""
    if not context.database_problem or any(r.id == "db.reachable" for r in results):
        return results
    outage = CheckResult(
        "db.reachable", "database", "fail", str(context.database_problem),
        "check AWE_DATABASE_URL, and that the database is running", {}, 0.0,
    )  # fmt: skip
    return [outage, *results]


def _repaired(probe: Probe, context: Context) -> Outcome:
    assert probe.repair is not None
    return Outcome("pass", probe.repair(context) or "nothing to change")


def _with(result: CheckResult, **changes: Any) -> CheckResult:
    return CheckResult(**{**result.__dict__, **changes})
