"""What every operational command shares: the seeds' exit codes and line format, ``--json``,
``--dry-run`` (exit 10), confirmation of destructive work, and a row in ``script_executions``
for each run (see :func:`operation`)."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text

from awe.cli.context import CliState, console, print_json, state
from awe.core.clock import utcnow
from awe.core.errors import AweError, ValidationFailed
from awe.services import operations
from awe.services.doctor import Report, Status

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON report.")]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", envvar="DRY_RUN", help="Change nothing; say what would happen (exit 10)."
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DRY_RUN_EXIT = 10

_F = TypeVar("_F", bound=Callable[..., Any])
_LEVEL: dict[Status, tuple[str, str]] = {
    "pass": ("INFO", "green"),
    "warn": ("WARNING", "yellow"),
    "fail": ("ERROR", "red"),
    "skip": ("INFO", "dim"),
}


def operation(command: str) -> Callable[[_F], _F]:
    """Record each run of the decorated command in ``script_executions``: its masked command
    line, the operator, its times, exit code, error and report (``CliState.report``)."""

    def decorate(function: _F) -> _F:
        @functools.wraps(function)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            ctx = kwargs.get("ctx")
            cli = state(ctx) if ctx is not None else None
            started = utcnow()
            code, error = 1, None
            try:
                result = function(*args, **kwargs)
                code = 0
                return result
            except typer.Exit as exc:
                code = exc.exit_code
                raise
            except AweError as exc:
                code, error = exc.exit_code, exc.message
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                if cli is not None:
                    _record(cli, command, started, code, error)

        return recorded  # type: ignore[return-value]

    return decorate


def _record(cli: CliState, command: str, started: datetime, code: int, error: str | None) -> None:
    if not cli.record:
        return
    try:
        db = cli.db
    except AweError:
        return  # the settings are invalid: that error is what the user sees
    operations.record(
        db,
        command=command,
        arguments=sys.argv[1:],
        actor=operations.operator(run_id=os.environ.get("AWE_RUN_ID")),
        started_at=started,
        finished_at=utcnow(),
        exit_code=code,
        error=error,
        report=cli.report,
    )


_DURATION = re.compile(r"^(\d+)\s*([smhd])$")


def duration(value: str, option: str) -> timedelta:
    """``30m``, ``24h``, ``7d`` as a timedelta; ValidationFailed naming ``option`` otherwise."""
    match = _DURATION.match(value.strip())
    if not match:
        raise ValidationFailed(f"{option} {value!r}: use a number and s, m, h or d, like 30m")
    return timedelta(seconds={"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]] * int(match[1]))


def dry_run(cli: CliState, flag: bool) -> bool:
    """Whether this run changes nothing (``--dry-run`` or ``AWE_DRY_RUN``/``DRY_RUN``)."""
    return flag or cli.settings.dry_run


def finish_dry_run(component: str, message: str) -> None:
    """Say what a dry run would have done, and exit 10."""
    line(component, "INFO", f"dry run: {message}")
    raise typer.Exit(DRY_RUN_EXIT)


def confirm(question: str, *, yes: bool) -> None:
    """Go on with ``--yes`` or a yes at the prompt; without a terminal to ask, refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationFailed(f"{question} Pass --yes to confirm (no terminal to ask on).")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def line(component: str, level: str, message: str, *, style: str | None = None) -> None:
    """``[2026-12-02 10:30:00] [INFO] [component] message`` on stdout."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    text = Text.assemble(f"[{stamp}] ", (f"[{level}]", style or ""), f" [{component}] {message}")
    console.print(text, highlight=False, soft_wrap=True)


def show_report(component: str, report: Report, *, as_json: bool) -> None:
    """A check report: one JSON document, or one line per check (and its fix) and a summary."""
    if as_json:
        print_json(report.as_dict())
        return
    for check in report.checks:
        level, style = _LEVEL[check.status]
        line(component, level, f"{check.status:<4}  {check.id}: {check.message}", style=style)
        if check.fix and check.status in ("fail", "warn"):
            line(component, level, f"      fix: {check.fix}", style=style)
    summary = report.summary
    counts = ", ".join(f"{summary[s]} {s}" for s in ("pass", "warn", "fail", "skip"))
    level, style = _LEVEL[report.status if report.status != "skip" else "skip"]
    line(component, level, f"{report.status}: {counts}", style=style)
