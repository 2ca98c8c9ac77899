"""Real local servers for the step kinds that talk to the network: HTTP and SMTP.

The HTTP server is the standard library's, answering from a script of responses per path and
recording every request; the SMTP server is aiosmtpd, keeping every message it accepts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    """One scripted answer: a status, a body (JSON when not bytes), and an optional delay."""

    status: int = 200
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A request header, whatever its case."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class HttpServer:
    """A threading HTTP server on loopback; ``script(path, *replies)`` sets what it answers.

    The last reply of a path repeats; an unscripted path answers 200 with ``{"path": …}``.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[Seen] = []
        self._script: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                reply = owner.next_reply(path)
                with owner._lock:
                    owner.requests.append(Seen(self.command, self.path, dict(self.headers), body))
                time.sleep(reply.delay)
                payload = reply.body if reply.body is not None else {"path": path}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(data)))
                if not isinstance(payload, bytes):
                    self.send_header("Content-Type", "application/json")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output quiet

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def script(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with ``replies`` in turn (the last one repeats)."""
        with self._lock:
            self._script[path] = list(replies)

    def next_reply(self, path: str) -> Reply:
        """The reply for the next request of ``path``."""
        with self._lock:
            replies = self._script.get(path)
            if not replies:
                return Reply()
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def seen(self, path: str) -> list[Seen]:
        """Requests received for ``path`` (query string ignored)."""
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]


@contextmanager
def http_server(host: str = "127.0.0.1") -> Iterator[HttpServer]:
    """A running HttpServer on ``host`` (any loopback address), shut down afterwards."""
    server = HttpServer(host)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


class Mailbox:
    """An aiosmtpd handler keeping accepted messages; refuses recipients it is told to."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        #: address → SMTP reply line, e.g. "550 5.1.1 no such user".
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        """Accept the recipient unless told to refuse it."""
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Keep the message."""
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A running aiosmtpd server on loopback: (its mailbox, its port)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
