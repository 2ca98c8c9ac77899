"""Built-in kind ``shell``: a command in its own process group, with a clean environment.

``with: {command | argv, env, cwd, stdin, timeout, kill_grace}``. ``command`` is a string run by
``/bin/sh -c`` (templates inside it are shell text: quote values with the ``shquote`` filter);
``argv`` is a list run as it is, no shell, so a value can never become more arguments or more
commands. Output lines stream into run events. Exit codes follow the operational scripts:
0 success, 10 dry run (success, nothing changed), 1 and 4 retryable, 2, 3 and 5 not.
Cancellation and timeouts send SIGTERM to the whole process group, then SIGKILL after
``kill_grace`` seconds (default 5).

The process gets an allow-listed environment, never the worker's own: ``PATH``, ``HOME``,
``LANG``, ``LC_*``, ``TZ``, ``TMPDIR``, what ``AWE_SCRIPT_ENV_ALLOW`` adds, the step's
``AWE_RUN_ID``, ``AWE_STEP_ID``, ``AWE_ATTEMPT``, ``AWE_IDEMPOTENCY_KEY``, ``DRY_RUN``, and the
step's own ``env:`` (which may hold ``{{ secrets.NAME }}``). The worker's tokens, keys and
database URL stay out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.errors import StepCancelled, StepError, StepTimeout, exit_code_failure
from awe.engine.registry import step_kind

TAIL_LINES = 200
#: A line as it is kept and logged, and its event level: shape(line, stream) -> (line, level).
Shape = Callable[[str, str], tuple[str, str]]
#: The most stdout lines kept when stdout is collected rather than streamed.
QUIET_LINES = 100_000
DRY_RUN_EXIT = 10
KEYS = frozenset({"command", "argv", "env", "cwd", "stdin", "timeout", "kill_grace"})
#: What a script gets of the worker's environment, always.
ALLOWED_ENV = ("PATH", "HOME", "LANG", "LC_*", "TZ", "TMPDIR")


def allowed(name: str, patterns: list[str]) -> bool:
    """Whether ``name`` matches one of ``patterns`` (a name, or a prefix ending in ``*``)."""
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns if p)


def script_environment(ctx: StepContext, own: dict[str, Any] | None) -> dict[str, str]:
    """The environment of a script: the allow-list, the step's identity, its own ``env:``."""
    patterns = [*ALLOWED_ENV, *(p.strip() for p in ctx.settings.script_env_allow.split(","))]
    env = {k: v for k, v in os.environ.items() if allowed(k, patterns)}
    env.update({str(k): str(v) for k, v in (own or {}).items()})
    # Scripts may call `awe` itself (the ops CLI) even when its virtualenv is not activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env.update(
        AWE_RUN_ID=ctx.run_id,
        AWE_STEP_ID=ctx.step_key,
        AWE_ATTEMPT=str(ctx.attempt),
        AWE_IDEMPOTENCY_KEY=ctx.idempotency_key,
        DRY_RUN="true" if ctx.dry_run else env.get("DRY_RUN", "false"),
    )
    return env


def _argv(params: Any) -> list[str]:
    if not isinstance(params, dict):
        raise ValidationFailed("shell needs with.command (a string) or with.argv (a list)")
    unknown = sorted(k for k in params if k not in KEYS)
    if unknown:
        raise ValidationFailed(f"shell: with.{unknown[0]} is not a shell parameter")
    command, argv = params.get("command"), params.get("argv")
    if (command is None) == (argv is None):
        raise ValidationFailed(
            "shell needs with.command (a string, run by /bin/sh) or with.argv (a list, run as it"
            " is), one of them"
        )
    if argv is not None:
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str | int | float) for a in argv)
        ):
            raise ValidationFailed("shell: with.argv must be a non-empty list of strings")
        return [str(a) for a in argv]
    if not isinstance(command, str):
        raise ValidationFailed("shell: with.command must be a string")
    return ["/bin/sh", "-c", command]


@step_kind(keys=KEYS, privileged=True)
def run_shell(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Run the command; the output has exit_code and the tails of stdout and stderr."""
    argv = _argv(params)
    env_given = params.get("env")
    if env_given is not None and not isinstance(env_given, dict):
        raise ValidationFailed("shell: with.env must be a mapping of NAME: value")
    env = script_environment(ctx, env_given)
    timeout = params.get("timeout", ctx.timeout)
    grace = float(params.get("kill_grace", 5))
    stdin = params.get("stdin")
    try:
        proc = start_process(argv, params.get("cwd"), env, stdin is not None)
    except OSError as exc:
        raise StepError(
            f"shell: cannot start {argv[0]!r}: {exc.strerror or exc}",
            category="exit_code:127" if isinstance(exc, FileNotFoundError) else "exit_code:126",
            retryable=False,
        ) from None
    output = collect(ctx, proc, stdin, timeout, grace)
    code = output["exit_code"]
    if code not in (0, DRY_RUN_EXIT):
        raise exit_failure(code, "command", last_line(output["stderr"]))
    return output


def start_process(
    argv: list[str], cwd: Any, env: dict[str, str], has_stdin: bool
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if has_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: we can signal the whole tree
    )


def collect(
    ctx: StepContext,
    proc: subprocess.Popen[str],
    stdin: Any,
    timeout: Any,
    grace: float,
    *,
    quiet_stdout: bool = False,
    shape: Shape | None = None,
) -> dict[str, Any]:
    """Stream the process's output until it ends (or is stopped); its outcome.

    ``quiet_stdout``: stdout is kept whole (up to QUIET_LINES) and not logged as events.
    ``shape``: each line as it is kept and logged, and its event level (default: stderr lines
    are errors).
    """
    tails = {
        "stdout": deque[str](maxlen=QUIET_LINES if quiet_stdout else TAIL_LINES),
        "stderr": deque[str](maxlen=TAIL_LINES),
    }
    readers = [
        threading.Thread(
            target=_pump,
            args=(
                ctx,
                getattr(proc, name),
                name,
                tails[name],
                quiet_stdout and name == "stdout",
                shape,
            ),
            daemon=True,
        )
        for name in ("stdout", "stderr")
    ]
    for reader in readers:
        reader.start()
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(str(stdin))
        proc.stdin.close()
    started = time.monotonic()
    stop: StepError | None = None
    while proc.poll() is None:
        if ctx.cancelled:
            stop = StepCancelled("cancelled; the command's process group was terminated")
        elif timeout is not None and time.monotonic() - started > float(timeout):
            stop = StepTimeout(float(timeout))
        if stop is not None:
            _terminate(proc, grace)
            break
        time.sleep(0.02)
    code = proc.wait()
    for reader in readers:
        reader.join(timeout=2)  # a background child may hold the pipe open; do not wait on it
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if stop is not None:
        raise stop
    return {
        "exit_code": code,
        "stdout": "".join(tails["stdout"]),
        "stderr": "".join(tails["stderr"]),
        "dry_run": code == DRY_RUN_EXIT,
    }


def exit_failure(code: int, what: str, detail: str) -> StepError:
    """The step error of a command that exited ``code``: ``what exited N: detail``."""
    failure = exit_code_failure(code, f"{what} exited {code}" + (f": {detail}" if detail else ""))
    return StepError(failure.message, category=failure.category, retryable=failure.retryable)


def last_line(text: str) -> str:
    """The last non-empty line of ``text``, stripped."""
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")


def _pump(
    ctx: StepContext,
    stream: IO[str] | None,
    name: str,
    tail: deque[str],
    quiet: bool,
    shape: Shape | None,
) -> None:
    if stream is None:
        return
    for line in stream:
        level = "error" if name == "stderr" else "info"
        if shape is not None:
            line, level = shape(line, name)
        tail.append(line)
        if not quiet:
            ctx.log(line.rstrip("\n"), level=level, stream=name)


def _terminate(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after ``grace``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group may outlive the shell: kill what is left
