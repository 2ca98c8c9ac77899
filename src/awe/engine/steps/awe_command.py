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

import functools
import json
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from awe.core.errors import ValidationFailed
from awe.core.settings_export import secret_values, settings_environment
from awe.engine.context import StepContext
from awe.engine.errors import StepError
from awe.engine.registry import step_kind
from awe.engine.secret_refs import Masker
from awe.engine.steps.shell import (
    DRY_RUN_EXIT,
    Shape,
    collect,
    exit_failure,
    last_line,
    script_environment,
    start_process,
)
from awe.engine.templating import has_template

KEYS = frozenset({"command", "accept_exit_codes", "timeout", "kill_grace"})
#: The stderr lines kept in the output (all of them are in the run's events).
STDERR_LINES = 20


@dataclass(frozen=True)
class Allowed:
    """What one command may be given: options that take a value, flags, and at most one
    argument (a backup's name)."""

    values: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    argument: bool = False


def _allow(values: str = "", flags: str = "", *, argument: bool = False) -> Allowed:
    return Allowed(frozenset(values.split()), frozenset(flags.split()), argument)


#: The commands a step may run (checks, backups and upkeep), each with the only options it may
#: take: none that writes elsewhere (--dest, --encrypt-to), locks tables (--full) or prints
#: more than the report (--debug, --help).
ALLOWED: dict[tuple[str, ...], Allowed] = {
    ("doctor",): _allow("--only --skip", "--strict --fix"),
    ("backup", "create"): _allow(flags="--no-secrets"),
    ("backup", "list"): _allow(),
    ("backup", "verify"): _allow(flags="--restore-test", argument=True),
    ("backup", "prune"): _allow("--keep-last --keep-days", "--dry-run"),
    ("db", "current"): _allow(),
    ("db", "check"): _allow(),
    ("db", "stats"): _allow(),
    ("db", "vacuum"): _allow(flags="--analyze --dry-run"),
    ("certs", "list"): _allow(),
    ("certs", "check"): _allow("--warn-days", "--strict"),
    ("security", "check"): _allow(flags="--strict"),
    ("errors", "top"): _allow("--since --by --limit"),
    ("ops", "history"): _allow("--command --limit"),
}
#: A backup named by a step: a file name in the backup folder, or 'latest' (never a path).
_BACKUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


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


def command_words(command: Any) -> tuple[list[str], list[str]]:
    """The command's words and its options, each checked against :data:`ALLOWED`;
    ValidationFailed naming what may be given."""
    words = _words(command)
    head = next((h for h in ALLOWED if tuple(words[: len(h)]) == h), None)
    if head is None:
        shown = " ".join(words[:2]) or "(nothing)"
        raise ValidationFailed(
            f"awe: 'awe {shown}' may not run as a step; allowed: {', '.join(allowed_commands())}"
        )
    rest, allowed, named = words[len(head) :], ALLOWED[head], " ".join(head)
    seen_argument = False
    i = 0
    while i < len(rest):
        word = rest[i]
        option, equals, value = word.partition("=")
        if option in allowed.values:
            if not equals:
                i += 1
                value = rest[i] if i < len(rest) else ""
            if not value or value.startswith("-"):
                raise ValidationFailed(f"awe: {option} needs a value (awe {named})")
        elif word in allowed.flags:
            pass
        elif word.startswith("-"):
            takes = sorted(allowed.values | allowed.flags)
            raise ValidationFailed(
                f"awe: 'awe {named}' may not be given {option} in a step"
                f" (it may take: {', '.join(takes) or 'no option'})"
            )
        elif allowed.argument and not seen_argument and _BACKUP_NAME.fullmatch(word):
            seen_argument = True
        else:
            what = "a backup's name or 'latest'" if allowed.argument else "no argument"
            raise ValidationFailed(f"awe: {word!r} is not allowed here: awe {named} takes {what}")
        i += 1
    return list(head), rest


def _accepted(params: dict[str, Any]) -> frozenset[int]:
    codes = params.get("accept_exit_codes", [])
    if not isinstance(codes, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in codes
    ):
        raise ValidationFailed("awe: with.accept_exit_codes must be a list of exit codes")
    return frozenset(codes)


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The problems of literal ``with:`` values, for validation. A templated word is checked
    when the step runs; a string command may not hold a template at all (what it renders to
    would be split into more words: use the list form, one template per word)."""
    problems: list[tuple[str, str]] = []
    command = params.get("command")
    if isinstance(command, str) and has_template(command):
        problems.append(("command", "a template needs the list form: [backup, verify, '{{ … }}']"))
    elif not has_template(command):
        problems += _problem("command", lambda: command_words(command))
    if not has_template(params.get("accept_exit_codes")):
        problems += _problem("accept_exit_codes", lambda: _accepted(params))
    for key in ("timeout", "kill_grace"):
        if key in params and not has_template(params[key]):
            problems += _problem(key, functools.partial(_seconds, params, key, 0))
    return problems


def _problem(key: str, check: Callable[[], Any]) -> list[tuple[str, str]]:
    try:
        check()
    except ValidationFailed as exc:
        return [(key, exc.message.removeprefix("awe: "))]
    return []


def _seconds(params: dict[str, Any], key: str, default: float | None) -> float | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValidationFailed(f"awe: with.{key} must be a number of seconds, not {value!r}")
    return float(value)


def _summary(report: Any) -> str:
    """What a failed command's report says went wrong, in one line."""
    if not isinstance(report, dict):
        return ""
    checks = report.get("checks")
    if isinstance(checks, list):
        bad = [c for c in checks if isinstance(c, dict) and c.get("status") == "fail"]
        return "; ".join(f"{c.get('id')}: {c.get('message')}" for c in bad[:3])
    return str(report.get("error") or "")


def _shape(masker: Masker) -> Shape:
    """Child lines masked; a log line is an event of its own level (stderr is where the CLI
    logs, not only where it reports errors)."""

    def shape(line: str, stream: str) -> tuple[str, str]:
        text = masker.text(line)
        if stream == "stdout":
            return text, "info"
        head = text[:60]
        if "[ERROR]" in head or "[CRITICAL]" in head or text.startswith("error:"):
            return text, "error"
        return text, "warning" if "[WARNING]" in head else "info"

    return shape


@step_kind(keys=KEYS, privileged=True, check=check_params)
def run_awe(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Run ``awe COMMAND --json``; the output has the command, its exit code and its report."""
    if not isinstance(params, dict):
        raise ValidationFailed("awe needs with.command, like 'doctor' or 'backup create'")
    head, rest = command_words(params.get("command"))
    accepted = _accepted(params)
    timeout, grace = _seconds(params, "timeout", ctx.timeout), _seconds(params, "kill_grace", 5)
    settings = ctx.settings
    env = script_environment(ctx, None)
    env.update(settings_environment(settings, leave_out=frozenset({"dry_run"})))
    masker = Masker(secret_values(settings))
    # -P: nothing imported from the working directory; -E: no PYTHON* variable obeyed. It runs
    # in the backup folder (or the home): a bare name there is a backup, and no stray .env.
    argv = [sys.executable, "-P", "-E", "-m", "awe", *head, "--json", *rest]
    where = next((p for p in (settings.effective_backup_dir, settings.home) if p.is_dir()), None)
    try:
        proc = start_process(argv, where.absolute() if where else None, env, has_stdin=False)
    except OSError as exc:  # the interpreter itself is gone
        raise StepError(f"awe: cannot start {sys.executable}: {exc}", category="exit_code:126",
                        retryable=False) from None  # fmt: skip
    done = collect(ctx, proc, None, timeout, grace or 0, quiet_stdout=True, shape=_shape(masker))
    code = done["exit_code"]
    try:
        report = json.loads(done["stdout"]) if done["stdout"].strip() else None
    except ValueError:
        report = None
    report = masker.value(report)
    stderr = "".join(done["stderr"].splitlines(keepends=True)[-STDERR_LINES:])
    what = " ".join(["awe", *head, *rest])
    if report is not None:
        ctx.log(f"{what}: exit {code}" + (f", {report['status']}" if _has_status(report) else ""))
    if code not in (0, DRY_RUN_EXIT) and code not in accepted:
        raise exit_failure(code, what, _summary(report) or last_line(stderr))
    return {
        "command": what,
        "exit_code": code,
        "report": report,
        "stderr": stderr,
        "dry_run": code == DRY_RUN_EXIT,
    }


def _has_status(report: Any) -> bool:
    return isinstance(report, dict) and isinstance(report.get("status"), str)
