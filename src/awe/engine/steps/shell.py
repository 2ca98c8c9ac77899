"""Built-in kind ``shell``: a command through ``/bin/sh -c`` in its own process group.

``with: {command, env, cwd, stdin, timeout, kill_grace}``. Output lines stream into run events.
Exit codes follow the operational scripts: 0 success, 10 dry run (success, nothing changed),
1 and 4 retryable, 2, 3 and 5 not. Cancellation and timeouts send SIGTERM to the whole process
group, then SIGKILL after ``kill_grace`` seconds (default 5).
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
from pathlib import Path
from typing import IO, Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.errors import StepCancelled, StepError, StepTimeout, exit_code_failure

TAIL_LINES = 200
DRY_RUN_EXIT = 10


def run_shell(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Run the command; the output has exit_code and the tails of stdout and stderr."""
    if not isinstance(params, dict) or not isinstance(params.get("command"), str):
        raise ValidationFailed("shell needs with.command as a string")
    env = {**os.environ, **{str(k): str(v) for k, v in (params.get("env") or {}).items()}}
    # Scripts may call `awe` itself (the ops CLI) even when its virtualenv is not activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        AWE_RUN_ID=ctx.run_id,
        AWE_STEP_ID=ctx.step_key,
        AWE_ATTEMPT=str(ctx.attempt),
        AWE_IDEMPOTENCY_KEY=ctx.idempotency_key,
        DRY_RUN="true" if ctx.dry_run else env.get("DRY_RUN", "false"),
    )
    timeout = params.get("timeout", ctx.timeout)
    grace = float(params.get("kill_grace", 5))
    stdin = params.get("stdin")
    proc = subprocess.Popen(
        ["/bin/sh", "-c", params["command"]],
        cwd=params.get("cwd"),
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: we can signal the whole tree
    )
    tails = {"stdout": deque[str](maxlen=TAIL_LINES), "stderr": deque[str](maxlen=TAIL_LINES)}
    readers = [
        threading.Thread(
            target=_pump, args=(ctx, getattr(proc, name), name, tails[name]), daemon=True
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
    output = {
        "exit_code": code,
        "stdout": "".join(tails["stdout"]),
        "stderr": "".join(tails["stderr"]),
        "dry_run": code == DRY_RUN_EXIT,
    }
    if code not in (0, DRY_RUN_EXIT):
        last = (tails["stderr"][-1] if tails["stderr"] else "").strip()
        failure = exit_code_failure(code, f"command exited {code}" + (f": {last}" if last else ""))
        raise StepError(failure.message, category=failure.category, retryable=failure.retryable)
    return output


def _pump(ctx: StepContext, stream: IO[str] | None, name: str, tail: deque[str]) -> None:
    if stream is None:
        return
    for line in stream:
        tail.append(line)
        ctx.log(line.rstrip("\n"), level="error" if name == "stderr" else "info", stream=name)


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
