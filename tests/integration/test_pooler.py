"""awe behind a real pgbouncer in transaction pooling mode (PostgreSQL only): with the pooler
declared (or AWE_DATABASE_LISTEN_URL set) no statement is prepared on the server, so runs
started and finished by two workers through it all succeed, where psycopg's default prepared
statements break on the first transaction handed another server connection; and LISTEN goes to
PostgreSQL directly, still woken by NOTIFYs sent through the pooler."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from awe.engine.client import Engine
from awe.engine.wakeup import Listener
from awe.engine.worker import Worker, WorkerOptions
from awe.storage.database import Database, create_database
from tests.conftest import PostgresServer, make_settings
from tests.support.pgbouncer import pgbouncer

pytestmark = pytest.mark.postgres

SPEC = {
    "name": "pooled",
    "steps": [
        {"id": "a", "kind": "noop", "with": {"n": 1}},
        {"id": "b", "kind": "noop", "needs": ["a"]},
        {"id": "c", "kind": "noop", "needs": ["a"]},
    ],
}


@pytest.fixture
def direct(pg_server: PostgresServer, pg_template: str) -> str:
    """A fresh migrated database, by its direct URL."""
    name = f"awe_pooler_{os.getpid()}"
    url = pg_server.create_database(name, template=pg_template)
    yield url
    pg_server.drop_database(name)


def same_query_in_many_transactions(db: Database, times: int = 12) -> None:
    """One statement, each time in its own transaction: psycopg prepares it after 5 uses."""
    for _ in range(times):
        with db.read() as conn:
            conn.execute(text("SELECT count(*) FROM runs WHERE status = :s"), {"s": "queued"})


def test_through_a_transaction_pooler_nothing_is_prepared_and_every_run_succeeds(
    direct: str, tmp_path: Path
) -> None:
    """Declared behind a pooler, a statement repeated across transactions works and 40 runs
    of three steps, drained by two workers at once, all succeed; the same database without
    the declaration fails with psycopg's missing prepared statement (the control)."""
    with pgbouncer(direct) as pooled:
        settings = make_settings(tmp_path, database_url=pooled, database_listen_url=direct)
        assert settings.behind_transaction_pooler
        db = create_database(settings)
        try:
            same_query_in_many_transactions(db)
            engine = Engine(db)
            ids = [engine.submit(SPEC, {}) for _ in range(40)]
            errors: list[BaseException] = []

            def drain() -> None:
                try:
                    Worker(
                        db, WorkerOptions(concurrency=4, poll_seconds=0.01), settings=settings
                    ).drain()
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    errors.append(exc)

            workers = [threading.Thread(target=drain) for _ in range(2)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(timeout=300)
            assert errors == []
            assert {engine.get_run(i).status for i in ids} == {"succeeded"}
        finally:
            db.dispose()
        control = create_database(
            make_settings(tmp_path, database_url=pooled, db_transaction_pooler=False)
        )
        try:
            with pytest.raises(Exception, match="prepared statement"):
                same_query_in_many_transactions(control)
        finally:
            control.dispose()


def test_listen_goes_direct_and_is_woken_through_the_pooler(direct: str, tmp_path: Path) -> None:
    """With AWE_DATABASE_LISTEN_URL the listener holds its session on PostgreSQL itself, and a
    NOTIFY committed through the pooler wakes it."""
    with pgbouncer(direct) as pooled:
        settings = make_settings(tmp_path, database_url=pooled, database_listen_url=direct)
        db = create_database(settings)
        woken = threading.Event()
        listener = Listener.start_for(db, woken)
        assert listener is not None
        try:
            direct_db = create_database(make_settings(tmp_path, database_url=direct))
            try:
                for _ in range(100):  # until the listener's LISTEN is in place
                    with direct_db.read() as conn:
                        listening = conn.execute(
                            text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
                        ).scalar_one()
                    if listening:
                        break
                    woken.wait(0.05)
                assert listening == 1
            finally:
                direct_db.dispose()
            woken.clear()
            with db.write() as conn:
                conn.execute(text("SELECT pg_notify('awe_steps', 'default')"))
            assert woken.wait(5), "the NOTIFY sent through the pooler did not wake the listener"
        finally:
            listener.stop()
            db.dispose()
