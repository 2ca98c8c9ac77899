"""Templates that are not plain render in a child process: a memory limit, killed when late.

A template with loops, literals or calls can make one C call do unbounded work (serialise a list
that holds itself a million times over, compare two such lists) or allocate gigabytes, and no
tracer can interrupt a C call: in the engine's process that would stall a worker, or the API,
holding the write transaction. So such templates are sent to a child process (``python -m
awe.engine.template_child``) that renders them in the same sandbox, under ``RLIMIT_AS``; the
parent waits for the answer until the template's time is up, and kills the child if it is late.

The child gets the JSON data the template reads (sent once and kept while the engine keeps
rendering with the same data, as the items of a ``for_each`` do; the template's time starts once
the child has read it), then the template and the item, and answers with the value or the
failure. It is started with an environment of its own that holds none of the
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
from dataclasses import dataclass
from typing import IO, Any

import awe
from awe.engine.template_sandbox import (
    MAX_RENDERED,
    OUT_OF_MEMORY,
    TemplateFailed,
    render_here,
    too_costly,
)

#: The address space a child may use.
CHILD_MEMORY = 2 * 1024**3
#: How long a child may take to start, tries included (once per child and process; it counts
#: against the shared time of the templates of the pass that waits for it, not a template's).
STARTUP_SECONDS = 5.0
#: How long handing a child the data a template reads may take (before its own time starts).
TRANSFER_SECONDS = 10.0
#: The longest answer read back: the longest rendered text, every character escaped (twelve
#: bytes for a character outside the BMP, as a surrogate pair of escapes).
MAX_REPLY = 12 * MAX_RENDERED + 4096
#: Data sets a child keeps (the templates of one pass read different parts of the same data).
HELD_DATA = 4
#: How much longer than a template's own time the parent waits for its answer.
GRACE_SECONDS = 1.0
#: Idle children kept for the next templates.
MAX_IDLE = 4
_HEADER = struct.Struct(">Q")
#: Environment variables a child inherits: enough to start this Python, nothing else.
_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")


@dataclass(frozen=True)
class Apart:
    """What a template reads, as the child gets it: the data, what identifies it (its shape,
    then the objects it is made of: the same shape of the same objects is the same data, which
    a child that holds it is not sent again), and the item (a list of one, or empty)."""

    data: dict[str, Any]
    identity: list[Any]
    item: list[Any]


class Unavailable(Exception):
    """No template process could be started (the machine is out of processes or memory), or
    it could not be handed the data in time."""


class _Late(Exception):
    """The child did not answer in time."""


class _Gone(Exception):
    """The child died or answered something unreadable."""


def render(source: str, apart: Apart, *, key: str | None, seconds: float, out_of_time: str) -> Any:
    """Render ``source`` in a child, reading what ``apart`` holds; ``key`` set gives the
    template ``secrets`` whose references are tagged with it (secret_refs.RenderRefs).
    TemplateFailed when it fails, takes longer than ``seconds`` or runs out of memory;
    Unavailable when no child could be started or handed the data."""
    request = {
        "source": source,
        "item": apart.item,
        "key": key,
        "seconds": seconds,
        "out_of_time": out_of_time,
    }
    child = _take()
    try:
        request["token"] = child.hand_over(apart.data, apart.identity)
        reply = child.ask(request, deadline=time.monotonic() + seconds + GRACE_SECONDS)
    except _Late:
        child.kill()
        raise TemplateFailed(too_costly(source, out_of_time)) from None
    except _Gone:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=0.5)  # dead, or about to be: its signal tells why
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

    def __init__(self, deadline: float) -> None:
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
        # The data sets it holds, oldest first: (token, identity) (see Apart).
        self.holds: list[tuple[int, list[Any]]] = []
        self._tokens = 0
        try:
            ready = self._receive(deadline)
        except (_Late, _Gone):
            ready = None
        if ready != {"ready": True}:
            self.kill()
            raise Unavailable("the template process could not start")

    def hand_over(self, data: dict[str, Any], identity: list[Any]) -> int:
        """The token of ``data`` in the child: of a data set it holds already (see Apart), or
        of ``data`` sent now (TRANSFER_SECONDS at most for the child to read it: Unavailable
        then, or when it dies reading it)."""
        for index, (token, held) in enumerate(self.holds):
            if _same(held, identity):
                self.holds.append(self.holds.pop(index))
                return token
        self._tokens += 1
        token = self._tokens
        forget = [t for t, _ in self.holds[: max(0, len(self.holds) - HELD_DATA + 1)]]
        self.holds = [(t, i) for t, i in self.holds if t not in forget]
        try:
            self._send({"data": data, "token": token, "forget": forget})
            reply = self._receive(time.monotonic() + TRANSFER_SECONDS)
        except _Late:
            raise Unavailable("the data the template reads took too long to hand over") from None
        except _Gone:
            raise Unavailable("the template process stopped while reading the data") from None
        if reply != {"received": True}:
            raise Unavailable("the template process did not take the data")
        self.holds.append((token, list(identity)))
        return token

    def ask(self, request: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """Send ``request`` and wait for the answer until ``deadline``."""
        self._send(request)
        reply = self._receive(deadline)
        if not isinstance(reply, dict) or not ("ok" in reply or "failed" in reply):
            raise _Gone
        return reply

    def _send(self, message: dict[str, Any]) -> None:
        try:
            payload = _encoded(message)
            assert self.process.stdin is not None
            self.process.stdin.write(_HEADER.pack(len(payload)) + payload)
            self.process.stdin.flush()
        except (OSError, ValueError):
            raise _Gone from None

    def _receive(self, deadline: float) -> Any:
        assert self.process.stdout is not None
        header = _read_exactly(self.process.stdout, _HEADER.size, deadline)
        (size,) = _HEADER.unpack(header)
        if size > MAX_REPLY:
            raise _Gone
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


def _same(held: list[Any], identity: list[Any]) -> bool:
    return (
        len(held) == len(identity)
        and held[0] == identity[0]
        and all(a is b for a, b in zip(held[1:], identity[1:], strict=True))
    )


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytearray:
    buffer = bytearray(size)  # read in place: the answer is held once
    view = memoryview(buffer)
    done = 0
    descriptor = stream.fileno()
    poller = select.poll()  # not select(): descriptors above 1024 are common in a busy API
    poller.register(descriptor, select.POLLIN)
    while done < size:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise _Late
        got = os.readv(descriptor, [view[done : done + (1 << 20)]])
        if not got:
            raise _Gone
        done += got
    return buffer


def _child_environment() -> dict[str, str]:
    environment = {name: os.environ[name] for name in _ENV_NAMES if name in os.environ}
    # This Python finds its own site-packages; besides, only where this awe was imported from
    # and what the operator put on PYTHONPATH (never a working directory, hence -P).
    own = os.path.dirname(os.path.dirname(os.path.abspath(awe.__file__)))
    given = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([own, *given]))
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
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        return _Child(deadline)
    except Unavailable:
        if time.monotonic() > deadline - 1:
            raise
        return _Child(deadline)  # once more: the machine may have been short of processes


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
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a child killed by its limit dumps nothing
    # Imported here: the parent side of this module does not need the secret references.
    from awe.engine.secret_refs import RenderRefs

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    _send(replies, {"ready": True})
    held: dict[int, dict[str, Any]] = {}
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        _limit_cpu(TRANSFER_SECONDS + 1)  # reading the data has its own time
        request = json.loads(requests.read(size))
        if "data" in request:
            for token in request["forget"]:
                held.pop(token, None)
            held[request["token"]] = request["data"]
            _send(replies, {"received": True})
            continue
        context = dict(held[request["token"]])
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


def _encoded(message: dict[str, Any]) -> bytes:
    """``message`` as JSON in UTF-8 (escaped to ASCII only when it holds a lone surrogate)."""
    try:
        return json.dumps(message, default=str, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(message, default=str).encode()


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    payload = _encoded(message)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


if __name__ == "__main__":
    _serve()
