"""Storage on real SQLite files and a real PostgreSQL: migrations, schema checks, transactions."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, inspect, select, text
from sqlalchemy.exc import IntegrityError

from awe.core.config import Settings
from awe.core.errors import ConnectionFailed, DependencyError
from awe.services import health
from awe.storage import migrate
from awe.storage.database import Database, create_database
from awe.storage.models import Project, User
from awe.storage.schema import metadata


def test_migrations_reach_head_and_match_models(database: Database) -> None:
    """After upgrade to head, the database has the models' tables and check finds no difference."""
    state = migrate.status(database)
    assert state.up_to_date
    assert state.current == state.heads
    with database.read() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"users", "projects", "alembic_version"} <= tables
    assert migrate.differences(database) == []
    migrate.check(database)


def test_check_fails_when_a_model_changes_without_migration(database: Database) -> None:
    """A model with a column no migration creates makes check raise SchemaDrift naming it."""
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["projects"].append_column(Column("color", Integer, nullable=True))
    with pytest.raises(migrate.SchemaDrift) as info:
        migrate.check(database, changed)
    assert "add_column" in info.value.message
    assert "color" in info.value.message
    assert info.value.exit_code == 1


def test_check_fails_when_database_is_behind(database: Database) -> None:
    """A database below head fails check with advice to run 'awe db upgrade'."""
    migrate.downgrade(database, "base")
    with pytest.raises(migrate.SchemaDrift, match="awe db upgrade"):
        migrate.check(database)
    assert migrate.pending(database) == [r.revision for r in reversed(migrate.history())]


def test_downgrade_to_base_and_back(database: Database) -> None:
    """Every migration can be reverted and re-applied, ending with the same schema."""
    migrate.downgrade(database, "base")
    with database.read() as conn:
        assert "users" not in inspect(conn).get_table_names()
    migrate.upgrade(database)
    migrate.check(database)


def test_write_rolls_back_on_error(database: Database) -> None:
    """An exception inside write() leaves no row behind: no half-written state."""

    def insert_then_fail() -> None:
        with database.write() as conn:
            conn.execute(User.__table__.insert().values(id="u1", email="a@example.com"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with database.read() as conn:
        assert conn.execute(select(User.id)).all() == []


def test_foreign_keys_are_enforced(database: Database) -> None:
    """A project whose owner does not exist is refused on both backends."""
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(Project(name="orphan", owner_id="no-such-user"))


def test_timestamps_round_trip_as_aware_utc(database: Database) -> None:
    """A datetime in any timezone is stored as UTC and read back timezone-aware."""
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with database.session() as session:
        session.add(User(id="u1", email="a@example.com", created_at=moment, updated_at=moment))
    with database.session() as session:
        user = session.get(User, "u1")
        assert user is not None
        assert user.created_at == moment
        assert user.created_at.tzinfo is not None
        assert user.created_at.utcoffset() == timedelta(0)
        assert user.created_at.hour == 1


def test_health_reports_ok(database: Database) -> None:
    """The health service says ok when the database answers."""
    result = health.check(database)
    assert result.ok
    assert result.as_dict()["status"] == "ok"


def test_sqlite_pragmas(settings: Settings) -> None:
    """SQLite connections use WAL, a busy timeout and enforce foreign keys."""
    db = create_database(settings)
    try:
        with db.read() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        db.dispose()


def test_sqlite_concurrent_writers_never_lose_an_update(settings: Settings) -> None:
    """Threads doing read-modify-write through write() all succeed and no increment is lost.

    Without BEGIN IMMEDIATE, two deferred transactions that both read then write deadlock and one
    fails with 'database is locked'; the one write path prevents that.
    """
    db = create_database(settings, url=f"sqlite:///{settings.home / 'counter.db'}")
    other = create_database(settings, url=f"sqlite:///{settings.home / 'counter.db'}")
    with db.write() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def bump(handle: Database) -> None:
        try:
            for _ in range(50):
                with handle.write() as conn:
                    n = conn.execute(text("SELECT n FROM counter")).scalar_one()
                    conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    # Two handles stand in for two processes: they do not share the in-process write lock.
    threads = [threading.Thread(target=bump, args=(h,)) for h in (db, db, other, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with db.read() as conn:
            assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 200
    finally:
        db.dispose()
        other.dispose()


def test_unreachable_postgres_names_host_and_port(settings: Settings) -> None:
    """Connecting to a PostgreSQL that is not there raises ConnectionFailed (exit 4) naming it."""
    db = create_database(settings, url="postgresql://u:p@127.0.0.1:1/x")
    try:
        with pytest.raises(ConnectionFailed) as info:
            db.ping()
        assert info.value.exit_code == 4
        assert "127.0.0.1:1" in info.value.message
        assert "\n" not in info.value.message
        assert "p@" not in info.value.message
        result = health.check(db)
        assert not result.ok
        assert result.as_dict()["status"] == "unavailable"
    finally:
        db.dispose()


def test_utc_column_refuses_naive_datetimes(database: Database) -> None:
    """A naive datetime is ambiguous and is refused instead of being stored as if it were UTC."""
    with pytest.raises(Exception, match="naive datetime"), database.session() as session:
        session.add(User(id="u2", email="b@example.com", created_at=datetime(2026, 1, 1)))
    now = datetime.now(UTC)
    with database.session() as session:
        session.add(User(id="u3", email="c@example.com", created_at=now, updated_at=now))


def test_missing_postgres_driver_is_a_dependency_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without psycopg installed, a PostgreSQL URL fails with exit 2 and says what to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` raise ImportError
    with pytest.raises(DependencyError) as info:
        create_database(settings, url="postgresql://u@h/d")
    assert info.value.exit_code == 2
    assert "awe[postgres]" in info.value.message
