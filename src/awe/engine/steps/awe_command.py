"""Built-in kind ``awe``: one of awe's own operations commands, run for the installation.

``with: {command, accept_exit_codes, timeout, kill_grace}``. ``command`` is the command line
after ``awe`` (a string split like a shell would, or a list): ``doctor --only database``,
``backup create``, ``db vacuum``. Only the operations commands of :data:`ALLOWED` may be run:
those that check, back up, verify, prune and tidy; never a restore, a reset, a downgrade, a
secret or a user.

The command runs as a child process of the worker, with ``--json`` added, and reads the worker's
own settings (its home, database and keys): it is awe's code, not the user's, which is why the
list is closed and why the kind is privileged. Its JSON report is the step's ``report``; its
exit code follows the operational scripts (0 success, 10 dry run, 1 and 4 retried, 2, 3 and 5
not), and the codes in ``accept_exit_codes`` count as success too (a checklist takes a failed
check, exit 1, as a finding to report rather than an error).
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

from awe.core.config import settings_environment
from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.errors import StepError
from awe.engine.registry import step_kind
from awe.engine.steps.shell import (
    DRY_RUN_EXIT,
    collect,
    exit_failure,
    last_line,
    script_environment,
    start_process,
)
from awe.engine.templating import has_template

KEYS = frozenset({"command", "accept_exit_codes", "timeout", "kill_grace"})
#: The commands a step may run: checks, backups and upkeep, none that loses data.
ALLOWED = frozenset(
    {
        ("doctor",),
        ("backup", "create"),
        ("backup", "list"),
        ("backup", "verify"),
        ("backup", "prune"),
        ("db", "current"),
        ("db", "check"),
        ("db", "stats"),
        ("db", "vacuum"),
        ("certs", "list"),
        ("certs", "check"),
        ("security", "check"),
        ("errors", "top"),
        ("ops", "history"),
    }
)
#: Options that would make a command other than the one listed.
REFUSED_OPTIONS = frozenset({"--help", "--install-completion", "--show-completion"})


def allowed_commands() -> list[str]:
    """The commands a step may run, as words."""
    return sorted(" ".join(words) for words in ALLOWED)


def _words(command: Any) -> list[str]:
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise ValidationFailed(f"awe: with.command cannot be split into words: {exc}") from None
    if isinstance(command, list) and all(isinstance(w, str | int | float) for w in command):
        return [str(w) for w in command]
    raise ValidationFailed(
        "awe: with.command must be a command line after 'awe' (a string or a list of words)"
    )


def command_words(command: Any) -> list[str]:
    """The checked words of ``with.command``; ValidationFailed naming what may be run."""
    words = _words(command)
    head = tuple(w for w in words[:2] if not w.startswith("-"))
    known = next((n for n in (2, 1) if head[:n] in ALLOWED), None)
    if known is None:
        shown = " ".join(words[:2]) or "(nothing)"
        raise ValidationFailed(
            f"awe: 'awe {shown}' may not run as a step; allowed: {', '.join(allowed_commands())}"
        )
    refused = next((w for w in words if w.split("=")[0] in REFUSED_OPTIONS), None)
    if refused is not None:
        raise ValidationFailed(f"awe: {refused} may not be given to a step's command")
    return words


def _accepted(params: dict[str, Any]) -> frozenset[int]:
    codes = params.get("accept_exit_codes", [])
    if not isinstance(codes, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in codes
    ):
        raise ValidationFailed("awe: with.accept_exit_codes must be a list of exit codes")
    return frozenset(codes)


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The problems of literal ``with:`` values, for validation (templates are left alone)."""
    problems: list[tuple[str, str]] = []
    checks = (("command", command_words), ("accept_exit_codes", lambda _: _accepted(params)))
    for key, check in checks:
        value = params.get(key)
        if value is None and key != "command":
            continue
        if has_template(value):
            continue
        try:
            check(value)
        except ValidationFailed as exc:
            problems.append((key, exc.message.removeprefix("awe: ")))
    return problems


def _summary(report: Any) -> str:
    """What a failed command's report says went wrong, in one line."""
    if not isinstance(report, dict):
        return ""
    checks = report.get("checks")
    if isinstance(checks, list):
        bad = [c for c in checks if isinstance(c, dict) and c.get("status") == "fail"]
        return "; ".join(f"{c.get('id')}: {c.get('message')}" for c in bad[:3])
    return str(report.get("error") or "")


@step_kind(keys=KEYS, privileged=True, check=check_params)
def run_awe(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Run ``awe COMMAND --json``; the output has the command, its exit code and its report."""
    if not isinstance(params, dict):
        raise ValidationFailed("awe needs with.command, like 'doctor' or 'backup create'")
    words = command_words(params.get("command"))
    accepted = _accepted(params)
    env = script_environment(ctx, None)
    env.update(settings_environment(ctx.settings, leave_out=frozenset({"dry_run"})))
    argv = [sys.executable, "-m", "awe", *words, "--json"]
    try:
        proc = start_process(argv, None, env, has_stdin=False)
    except OSError as exc:  # the interpreter itself is gone
        raise StepError(f"awe: cannot start {sys.executable}: {exc}", category="exit_code:126",
                        retryable=False) from None  # fmt: skip
    timeout = params.get("timeout", ctx.timeout)
    done = collect(ctx, proc, None, timeout, float(params.get("kill_grace", 5)), quiet_stdout=True)
    code = done["exit_code"]
    try:
        report = json.loads(done["stdout"]) if done["stdout"].strip() else None
    except ValueError:
        report = None
    what = f"awe {' '.join(words)}"
    if report is not None:
        ctx.log(f"{what}: exit {code}" + (f", {report['status']}" if _has_status(report) else ""))
    if code not in (0, DRY_RUN_EXIT) and code not in accepted:
        raise exit_failure(code, what, _summary(report) or last_line(done["stderr"]))
    return {
        "command": what,
        "exit_code": code,
        "report": report,
        "stderr": done["stderr"],
        "dry_run": code == DRY_RUN_EXIT,
    }


def _has_status(report: Any) -> bool:
    return isinstance(report, dict) and isinstance(report.get("status"), str)
