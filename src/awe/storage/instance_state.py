"""Named values every process of an installation shares (the ``instance_state`` table).

Callers own the transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from awe.storage.database import dialect_insert
from awe.storage.secret_models import InstanceState

#: The fingerprint of the instance key the database was set up with.
INSTANCE_KEY_FINGERPRINT = "instance_key_fingerprint"


def get(conn: Connection, name: str) -> str | None:
    """The value called ``name``, or None."""
    found = conn.execute(select(InstanceState.value).where(InstanceState.name == name)).scalar()
    return None if found is None else str(found)


def put(conn: Connection, name: str, value: str, *, now: datetime) -> None:
    """Set ``name`` to ``value`` (one atomic upsert)."""
    statement = dialect_insert(conn)(InstanceState).values(name=name, value=value, updated_at=now)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["name"], set_={"value": value, "updated_at": now}
        )
    )


def put_if_absent(conn: Connection, name: str, value: str, *, now: datetime) -> str:
    """Set ``name`` unless it is set already; the value it has afterwards (safe in a race)."""
    statement = dialect_insert(conn)(InstanceState).values(name=name, value=value, updated_at=now)
    conn.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
    return get(conn, name) or value


def take(conn: Connection, name: str) -> str | None:
    """Remove ``name`` and return its value, or None if it was not set (or another transaction
    took it first: the delete only returns what it deleted)."""
    found = conn.execute(
        delete(InstanceState).where(InstanceState.name == name).returning(InstanceState.value)
    ).scalar()
    return None if found is None else str(found)


def remove(conn: Connection, name: str) -> None:
    """Forget ``name``."""
    conn.execute(delete(InstanceState).where(InstanceState.name == name))
