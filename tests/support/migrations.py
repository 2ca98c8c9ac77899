"""Upgrading a database that holds rows written by an older schema."""

from __future__ import annotations

from awe.storage import migrate
from awe.storage.database import Database


def upgrade_with_rows(database: Database, revision: str, rows: str) -> None:
    """Go down to ``revision``, insert ``rows`` (SQL statements split on ``;``), go to head."""
    migrate.downgrade(database, revision)
    with database.write() as conn:
        for statement in rows.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    migrate.upgrade(database)
