"""The one shape every check report has (doctor, security check, verify):

``{"status", "summary": {"pass", "warn", "fail", "skip"}, "checks": [{"id", "group", "status",
"message", "fix", "data", "duration_ms"}]}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from awe.core.errors import AweError

Status = Literal["pass", "warn", "fail", "skip"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail", "skip")


@dataclass(frozen=True)
class Outcome:
    """What a check found: its status, a sentence, and the command that fixes it."""

    status: Status
    message: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def passed(message: str, **data: Any) -> Outcome:
    """A check that found nothing wrong."""
    return Outcome("pass", message, data=data)


def warned(message: str, fix: str | None = None, **data: Any) -> Outcome:
    """Something to look at soon; not broken."""
    return Outcome("warn", message, fix, data)


def failed(message: str, fix: str | None = None, **data: Any) -> Outcome:
    """Something broken, with what repairs it."""
    return Outcome("fail", message, fix, data)


def skipped(reason: str, **data: Any) -> Outcome:
    """A check that could not run (never counted as a pass), with the reason."""
    return Outcome("skip", reason, data=data)


class SkipCheck(Exception):
    """Raised by a probe that cannot run (what it needs is missing or failed already)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckResult:
    """One line of a report."""

    id: str
    group: str
    status: Status
    message: str
    fix: str | None
    data: dict[str, Any]
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "id": self.id,
            "group": self.group,
            "status": self.status,
            "message": self.message,
            "fix": self.fix,
            "data": self.data,
            "duration_ms": self.duration_ms,
        }


def run_check(check_id: str, group: str, probe: Callable[[], Outcome]) -> CheckResult:
    """Run one probe and time it. A probe that raises fails with what it raised (an AweError's
    message, or the exception's type and text): a check never takes the report down."""
    started = time.perf_counter()
    try:
        outcome = probe()
    except SkipCheck as exc:
        outcome = skipped(exc.reason)
    except AweError as exc:
        outcome = failed(exc.message)
    except Exception as exc:  # noqa: BLE001 - any error of a probe is that check's finding
        outcome = failed(f"the check itself failed: {type(exc).__name__}: {exc}")
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult(
        check_id, group, outcome.status, outcome.message, outcome.fix, outcome.data, elapsed
    )


@dataclass(frozen=True)
class Report:
    """Checks in the order they ran."""

    checks: tuple[CheckResult, ...]

    @classmethod
    def of(cls, checks: Iterable[CheckResult]) -> Report:
        """A report of these checks."""
        return cls(tuple(checks))

    @property
    def summary(self) -> dict[str, int]:
        """How many checks ended in each status."""
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    @property
    def status(self) -> Status:
        """fail if any check failed, else warn if any warned, else pass (skips do not pass a
        report that has nothing else: an all-skipped report is skip)."""
        summary = self.summary
        if summary["fail"]:
            return "fail"
        if summary["warn"]:
            return "warn"
        return "pass" if summary["pass"] else "skip"

    def exit_code(self, *, strict: bool = False) -> int:
        """0 unless a check failed (or, ``strict``, warned): then 1."""
        if self.status == "fail" or (strict and self.status == "warn"):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "status": self.status,
            "summary": self.summary,
            "checks": [c.as_dict() for c in self.checks],
        }
