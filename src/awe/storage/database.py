"""The database handle: an SQLAlchemy engine plus the rules for using it on each backend.

SQLite (one machine): WAL so readers never block the writer, a busy timeout so a waiting writer
retries instead of failing, foreign keys on, and one write path — every write transaction starts
with ``BEGIN IMMEDIATE`` (it takes the write lock up front, so two writers never deadlock trying to
upgrade read locks) and, within a process, writers queue on one lock rather than spinning on
SQLITE_BUSY. PostgreSQL (many machines): psycopg 3 with a pool sized by the settings.

Transactions belong to the caller: helpers take a ``Connection`` and do not commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from awe.core import metrics
from awe.core.config import Settings, load_settings
from awe.core.errors import ConfigurationError, ConnectionFailed, DependencyError

_BEGIN_OPTION = "awe_sqlite_begin"
_SETTINGS = "awe_settings"
#: The errors a database outage raises, for callers that retry through it (workers, the
#: scheduler); :func:`is_outage` tells which of them really are one.
DB_ERRORS = (OperationalError, InterfaceError, ConnectionFailed)
# PostgreSQL states worth retrying: connection exceptions (08…), serialisation failures and
# deadlocks (40001, 40P01), the server shutting down or starting (57P01-57P03), too many
# connections (53300), a lock not available (55P03).
_TRANSIENT_STATES = ("08", "40001", "40P01", "57P01", "57P02", "57P03", "53300", "55P03")
# SQLite messages of a busy, locked or unreachable database file.
_TRANSIENT_SQLITE = ("locked", "busy", "disk i/o", "unable to open", "readonly database")


def is_outage(exc: BaseException) -> bool:
    """True for errors a retry may cure: a lost or refused connection, a locked or busy
    database, a deadlock or serialisation failure. A value the database refuses, a query it
    cancels, a resource limit or a programming error is not one: retrying cannot help."""
    if isinstance(exc, ConnectionFailed | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None:
        return str(state).startswith(_TRANSIENT_STATES)
    reason = str(exc.orig).lower()
    if "sqlite" in type(exc.orig).__module__:
        return any(word in reason for word in _TRANSIENT_SQLITE)
    return True  # an operational error without a state: a connection that went away


class Database:
    """One engine and how to open read and write transactions on it.

    It carries the settings it was made with, so code that only holds a connection (the
    engine's transitions) reads the same limits as the process (see :func:`settings_of`).
    """

    def __init__(self, engine: Engine, settings: Settings | None = None) -> None:
        self.engine = engine
        self.url: URL = engine.url
        self.dialect: str = engine.dialect.name
        self._settings = settings
        # Process-local queue for SQLite writers; PostgreSQL handles concurrency itself.
        self._write_lock = threading.RLock() if self.is_sqlite else None

    @property
    def settings(self) -> Settings:
        """The settings this database was made with (the environment's, when none were given)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def is_sqlite(self) -> bool:
        """True when this is the embedded SQLite backend."""
        return self.dialect == "sqlite"

    def describe(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    def connect(self) -> Connection:
        """Open a connection, turning an unreachable database into a one-line ConnectionFailed."""
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise connection_error(self.url, exc) from None
        conn.info[_SETTINGS] = self.settings
        return conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends without an exception."""
        if self._write_lock is None:
            with self.connect() as conn:
                metrics.begin(conn)
                with conn.begin():
                    yield conn
                metrics.committed(conn)
            return
        with self._write_lock, self.connect() as conn:
            conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            metrics.begin(conn)
            with conn.begin():
                yield conn
            metrics.committed(conn)

    @contextmanager
    def schema_change(self) -> Iterator[Connection]:
        """A write transaction for migrations. On SQLite, foreign-key actions are off inside it:
        a migration that rebuilds a table drops it first, and with them on, dropping a parent
        table would delete every child row (ON DELETE CASCADE). The keys are checked before the
        transaction commits, and turned on again afterwards."""
        if self._write_lock is None:
            with self.write() as conn:
                yield conn
            return
        with self._write_lock, self.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            # Outside any transaction: inside one, this has no effect.
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise ConfigurationError(
                            f"the migration left {len(broken)} row(s) pointing at nothing (first:"
                            f" table {broken[0][0]}, row {broken[0][1]}); nothing was changed"
                        )
            finally:
                raw.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (on SQLite, a deferred one that takes no write lock)."""
        with self.connect() as conn:
            if self.is_sqlite:
                conn.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
            with conn.begin():
                yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM session in a write transaction, committed when the block ends cleanly."""
        with self.write() as conn, Session(bind=conn, expire_on_commit=False) as session:
            yield session
            session.flush()

    def ping(self) -> None:
        """Raise ConnectionFailed unless the database answers ``SELECT 1``."""
        try:
            with self.read() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise connection_error(self.url, exc) from None

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def connection_error(url: URL, exc: DBAPIError) -> ConnectionFailed:
    """A one-line message naming where the database was expected and why it did not answer."""
    reason = _first_reason(exc)
    if url.get_backend_name() == "sqlite":
        return ConnectionFailed(f"cannot open the SQLite database {url.database}: {reason}")
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return ConnectionFailed(
        f"cannot connect to PostgreSQL at {where} (database {url.database!r}): {reason}"
    )


def _first_reason(exc: DBAPIError) -> str:
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    if not lines:
        return type(exc.orig).__name__
    # psycopg says 'connection failed: connection to server at "h", port p failed: <reason>'.
    return lines[0].rsplit(": ", 1)[-1]


def create_database(settings: Settings, *, url: str | None = None) -> Database:
    """Build the Database for ``url`` (default: the settings' database URL)."""
    return Database(
        build_engine(url or settings.effective_database_url, settings=settings), settings
    )


def dialect_insert(conn: Connection) -> Any:
    """``insert`` of this connection's backend (it has ``on_conflict_do_update``/``nothing``)."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def settings_of(conn: Connection) -> Settings:
    """The settings of the Database ``conn`` was opened from."""
    found = conn.info.get(_SETTINGS)
    return found if isinstance(found, Settings) else load_settings()


def build_engine(raw_url: str, *, settings: Settings) -> Engine:
    """An SQLAlchemy engine configured for the URL's backend."""
    url = make_url(raw_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, settings)
    if backend == "postgresql":
        return _postgres_engine(url, settings)
    raise ConfigurationError(
        f"DATABASE_URL uses {backend!r}; awe supports sqlite:/// and postgresql:// URLs"
    )


def _sqlite_engine(url: URL, settings: Settings) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    module, load_vec = sqlite_driver()
    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        module=module,
        # An error's text never carries the statement's values (a person's address, a step's
        # input): errors end up in logs and in the record of operational commands.
        hide_parameters=True,
        connect_args={
            "timeout": settings.sqlite_busy_timeout_ms / 1000,
            "check_same_thread": False,
        },
    )
    busy_ms = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if load_vec is not None:
            load_vec(dbapi_connection)
        # Take transaction control away from the sqlite3 module so our BEGIN is the one used.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Durable at every checkpoint; with WAL, NORMAL cannot corrupt the database on a crash.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted and rewritten cells are zeroed inside their page, so an erasure really
        # removes the bytes. FAST, not ON: ON also writes every freed page out as zeros, which
        # cost the queue 10-20 % of its drain rate (bench/engine.py); what FAST can leave in
        # freed pages, the erasure finds by reading the file and rebuilds away
        # (awe.ops.erasure_storage).
        cursor.execute("PRAGMA secure_delete=FAST")
        # Sized for a queue whose file grows: a 16 MiB page cache per connection (the default
        # is 2 MB; a pool of 15 connections stays under 250 MiB) and reads through a 256 MiB
        # memory map, shared by every connection through the OS's page cache.
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def sqlite_driver() -> tuple[Any, Callable[[Any], None] | None]:
    """The DB-API module for SQLite, and how to load sqlite-vec into a connection.

    The standard library's sqlite3 often cannot load extensions; pysqlite3-binary (a current
    SQLite) can. With both pysqlite3 and sqlite-vec installed, every connection gets the vector
    functions; otherwise vector search falls back to exact search in numpy.
    """
    try:
        import pysqlite3.dbapi2 as module  # type: ignore[import-untyped]
        import sqlite_vec  # type: ignore[import-untyped]
    except ImportError:
        import sqlite3

        return sqlite3, None

    def load(connection: Any) -> None:
        connection.enable_load_extension(True)
        sqlite_vec.load(connection)
        connection.enable_load_extension(False)

    return module, load


def has_vector_functions(db: Database) -> bool:
    """True when this SQLite database's connections have sqlite-vec's functions."""
    return db.is_sqlite and sqlite_driver()[1] is not None


def _postgres_engine(url: URL, settings: Settings) -> Engine:
    try:
        import psycopg  # noqa: F401 - only to say clearly when the driver is missing
    except ImportError:
        raise DependencyError(
            "DATABASE_URL points at PostgreSQL but its driver is not installed;"
            " install it with: pip install 'awe[postgres]'"
        ) from None
    return create_engine(
        url.set(drivername="postgresql+psycopg"),
        hide_parameters=True,  # as for SQLite: no values in error texts
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # A server restart leaves dead sockets in the pool; check before handing one out.
        pool_pre_ping=True,
        # Through a transaction pooler the next transaction may get another server connection,
        # which never saw the statements psycopg prepared after a few uses: prepare none.
        connect_args={
            "connect_timeout": settings.db_connect_timeout,
            **({"prepare_threshold": None} if settings.behind_transaction_pooler else {}),
        },
    )
