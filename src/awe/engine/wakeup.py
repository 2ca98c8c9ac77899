"""Waking idle workers: PostgreSQL LISTEN/NOTIFY on a direct connection.

SQLite has no cross-process notification: workers poll every ``poll_seconds`` (50 ms by
default), and a submit in the same process sets an in-process event. Polling stays on with
PostgreSQL too, as the fallback when a notification is missed or the listener is reconnecting.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy.engine import make_url

from awe.core.logging import get_logger
from awe.storage.database import Database

CHANNEL = "awe_steps"
#: How often an idle listening connection is checked with a query.
PING_SECONDS = 5.0
# libpq's TCP keepalive settings, as parameters of the connection URI.
_KEEPALIVES_QUERY = "keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3"
log = get_logger("wakeup")


class Listener:
    """A thread that LISTENs and sets ``event`` on every notification."""

    def __init__(self, db: Database, event: threading.Event) -> None:
        self.db = db
        self.event = event
        self._stop = threading.Event()
        #: Set while LISTEN is in place: only then may an idle worker wait long for a wake-up.
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="awe-listen", daemon=True)

    @classmethod
    def start_for(cls, db: Database, event: threading.Event) -> Listener | None:
        """A running listener for PostgreSQL; None for SQLite."""
        if db.dialect != "postgresql":
            return None
        listener = cls(db, event)
        listener._thread.start()
        return listener

    def stop(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        import psycopg

        # A direct connection (not a pooled one, and not through pgbouncer in transaction mode):
        # LISTEN belongs to a session. AWE_DATABASE_LISTEN_URL names it when the database URL
        # goes through a pooler.
        listen = self.db.settings.database_listen_url
        url = make_url(listen) if listen else self.db.url
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        while not self._stop.is_set():
            try:
                # Keepalives and a periodic ping: a connection that died without a word (a
                # half-open socket) is noticed within seconds, and idle workers stop relying
                # on it (they poll at the short interval until it is back).
                with psycopg.connect(
                    conninfo + ("&" if "?" in conninfo else "?") + _KEEPALIVES_QUERY,
                    autocommit=True,
                    connect_timeout=5,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.5
                    self.listening.set()
                    self.event.set()  # what was notified while not listening: look once
                    pinged = time.monotonic()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.event.set()
                        if time.monotonic() - pinged > PING_SECONDS:
                            conn.execute("SELECT 1")
                            pinged = time.monotonic()
                self.listening.clear()
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning(
                    f"listener disconnected; reconnecting in {delay:.1f} s", error=str(exc)[:200]
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
