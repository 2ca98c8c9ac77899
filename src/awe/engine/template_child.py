"""Templates that are not plain render in a child process: a memory limit, killed when late.

A template with loops, literals or calls can make one C call do unbounded work (serialise a list
that holds itself a million times over, compare two such lists) or allocate gigabytes, and no
tracer can interrupt a C call: in the engine's process that would stall a worker, or the API,
holding the write transaction. So such templates are sent to a child process (``python -m
awe.engine.template_child``) that renders them in the same sandbox, under ``RLIMIT_AS``; the
parent waits for the answer until the template's time is up, and kills the child if it is late.

The child gets the template, the JSON data it may read (sent once and kept while the engine keeps
rendering with the same data, as the items of a ``for_each`` do) and the item, and answers with
the value or the failure. It is started with an environment of its own that holds none of the
worker's settings or secrets; it never sees a secret's value, only the names (see templating.py).
Each template may use only its own time of CPU: an orphan stuck in one C call does not run on.

Children are kept in a small pool per process and started when first needed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

from awe.engine.template_sandbox import OUT_OF_MEMORY, TemplateFailed, render_here, too_costly

#: The address space a child may use.
CHILD_MEMORY = 2 * 1024**3
#: How long a child may take to start (once per child and process; it counts against the
#: time of the templates that wait for it).
STARTUP_SECONDS = 10.0
#: How much longer than a template's own time the parent waits for its answer.
GRACE_SECONDS = 1.0
#: Idle children kept for the next templates.
MAX_IDLE = 4
_HEADER = struct.Struct(">Q")
#: Environment variables a child inherits: enough to start this Python, nothing else.
_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")


class Unavailable(Exception):
    """No template process could be started (the machine is out of processes or memory)."""


class _Late(Exception):
    """The child did not answer in time."""


class _Gone(Exception):
    """The child died or answered something unreadable."""


def render(
    source: str,
    data: dict[str, Any],
    *,
    item: list[Any],
    key: str | None,
    seconds: float,
    out_of_time: str,
) -> Any:
    """Render ``source`` in a child, reading ``data`` (and ``item``, when the list holds one);
    ``key`` set gives the template ``secrets`` whose references are tagged with it
    (secret_refs.RenderRefs). TemplateFailed when it fails, takes longer than ``seconds`` or
    runs out of memory; Unavailable when no child could be started."""
    request = {
        "source": source,
        "item": item,
        "key": key,
        "seconds": seconds,
        "out_of_time": out_of_time,
    }
    child = _take()
    try:
        reply = child.ask(request, data, deadline=time.monotonic() + seconds + GRACE_SECONDS)
    except _Late:
        child.kill()
        raise TemplateFailed(too_costly(source, out_of_time)) from None
    except _Gone:
        out_of_cpu = child.process.poll() == -signal.SIGXCPU
        child.kill()
        reason = out_of_time if out_of_cpu else OUT_OF_MEMORY
        raise TemplateFailed(too_costly(source, reason)) from None
    except BaseException:
        child.kill()  # whatever went wrong, a child in an unknown state is not reused
        raise
    _give_back(child)
    if "failed" in reply:
        raise TemplateFailed(str(reply["failed"]))
    return reply["ok"]


class _Child:
    """One child process and the data it holds."""

    def __init__(self) -> None:
        try:
            # -P: nothing from the working directory is importable ahead of the installed awe.
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "awe.engine.template_child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_child_environment(),
                close_fds=True,
            )
        except OSError as exc:
            raise Unavailable(f"the template process could not start: {exc}") from None
        # The data objects it holds, kept so that their identity means the same data.
        self.holds: list[Any] | None = None
        try:
            ready = self._receive(time.monotonic() + STARTUP_SECONDS)
        except (_Late, _Gone):
            ready = None
        if ready != {"ready": True}:
            self.kill()
            raise Unavailable("the template process could not start")

    def ask(
        self, request: dict[str, Any], data: dict[str, Any], *, deadline: float
    ) -> dict[str, Any]:
        """Send ``request`` with ``data`` (or nothing, when the child holds that data already)
        and wait for the answer until ``deadline``."""
        values = list(data.values())
        holds = self.holds
        same = holds is not None and len(holds) == len(values)
        same = same and all(a is b for a, b in zip(holds or [], values, strict=False))
        request = {**request, "data": None if same else data}
        try:
            payload = json.dumps(request, default=str).encode()
            assert self.process.stdin is not None
            self.process.stdin.write(_HEADER.pack(len(payload)) + payload)
            self.process.stdin.flush()
        except (OSError, ValueError):
            raise _Gone from None
        self.holds = values
        reply = self._receive(deadline)
        if not isinstance(reply, dict) or not ("ok" in reply or "failed" in reply):
            raise _Gone
        return reply

    def _receive(self, deadline: float) -> Any:
        assert self.process.stdout is not None
        header = _read_exactly(self.process.stdout, _HEADER.size, deadline)
        (size,) = _HEADER.unpack(header)
        body = _read_exactly(self.process.stdout, size, deadline)
        try:
            return json.loads(body)
        except ValueError:
            raise _Gone from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    wanted = size
    descriptor = stream.fileno()
    poller = select.poll()  # not select(): descriptors above 1024 are common in a busy API
    poller.register(descriptor, select.POLLIN)
    while wanted:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise _Late
        chunk = os.read(descriptor, min(wanted, 1 << 20))
        if not chunk:
            raise _Gone
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


def _child_environment() -> dict[str, str]:
    environment = {name: os.environ[name] for name in _ENV_NAMES if name in os.environ}
    # The same imports as this process (an installed awe, or one on PYTHONPATH).
    environment["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    return environment


_idle: list[_Child] = []
_lock = threading.Lock()


def _take() -> _Child:
    with _lock:
        while _idle:
            child = _idle.pop()
            if child.alive():
                return child
            child.kill()
    try:
        return _Child()
    except Unavailable:
        return _Child()  # once more: the machine may have been short of processes a moment


def _give_back(child: _Child) -> None:
    with _lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(child)
            return
    child.kill()


@atexit.register
def _stop_all() -> None:
    with _lock:
        children = list(_idle)
        _idle.clear()
    for child in children:
        child.kill()


def _forget_all() -> None:
    # A forked process must not talk to its parent's children.
    global _lock
    _idle.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_all)


def _serve() -> None:
    """The child: answer requests on stdin until it closes (when the parent exits or dies: an
    orphan stuck in one C call is stopped by the CPU limit of its template)."""
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    # Imported here: the parent side of this module does not need the secret references.
    from awe.engine.secret_refs import RenderRefs

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    _send(replies, {"ready": True})
    data: dict[str, Any] = {}
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        request = json.loads(requests.read(size))
        if request["data"] is not None:
            data = request["data"]
        context = dict(data)
        if request["item"]:
            context["item"] = request["item"][0]
        if request["key"] is not None:
            context["secrets"] = RenderRefs(request["key"])
        _limit_cpu(request["seconds"] + GRACE_SECONDS + 1)
        try:
            reply: dict[str, Any] = {
                "ok": render_here(
                    request["source"], context, request["seconds"], request["out_of_time"]
                )
            }
        except TemplateFailed as exc:
            reply = {"failed": str(exc)}
        _send(replies, reply)


def _limit_cpu(seconds: float) -> None:
    """Let the next template use at most ``seconds`` more of CPU time (then SIGXCPU)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    payload = json.dumps(message).encode()
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


if __name__ == "__main__":
    _serve()
