"""Reading and writing sealed project secrets (the rows of ``project_secrets``).

Each value is sealed for its project and name: a sealed value copied into another row does not
open there. Callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, select

from awe.core.crypto import InstanceKey
from awe.core.ids import new_id
from awe.storage.database import dialect_insert
from awe.storage.secret_models import ProjectSecret


def purpose(project_key: str, name: str) -> str:
    """What a secret's value is sealed for."""
    return f"project-secret:{project_key}:{name}"


def put(
    conn: Connection,
    key: InstanceKey,
    *,
    project_key: str,
    name: str,
    value: str,
    by: str | None,
    now: datetime,
) -> bool:
    """Set a secret (one atomic upsert: two at once never collide); True when it is new."""
    sealed = key.seal(value.encode(), purpose=purpose(project_key, name))
    row_id = new_id()
    statement = dialect_insert(conn)(ProjectSecret).values(
        id=row_id,
        project_key=project_key,
        name=name,
        sealed=sealed,
        created_at=now,
        updated_at=now,
        updated_by=by,
    )
    upserted = conn.execute(
        statement.on_conflict_do_update(
            index_elements=["project_key", "name"],
            set_={"sealed": sealed, "updated_at": now, "updated_by": by},
        ).returning(ProjectSecret.id)
    ).scalar_one()
    return bool(upserted == row_id)


def remove_project(conn: Connection, *, project_key: str) -> None:
    """Delete every secret of a project (the project is being deleted)."""
    conn.execute(delete(ProjectSecret).where(ProjectSecret.project_key == project_key))


def remove(conn: Connection, *, project_key: str, name: str) -> bool:
    """Delete a secret; False when there was none."""
    done = conn.execute(
        delete(ProjectSecret)
        .where(ProjectSecret.project_key == project_key, ProjectSecret.name == name)
        .returning(ProjectSecret.id)
    ).first()
    return done is not None


def names(conn: Connection, *, project_key: str) -> list[tuple[str, datetime, str | None]]:
    """(name, updated at, updated by) of a project's secrets, by name; never a value."""
    rows = conn.execute(
        select(ProjectSecret.name, ProjectSecret.updated_at, ProjectSecret.updated_by)
        .where(ProjectSecret.project_key == project_key)
        .order_by(ProjectSecret.name)
    ).all()
    return [(r.name, r.updated_at, r.updated_by) for r in rows]


def values(
    conn: Connection, key: InstanceKey, *, project_key: str, wanted: Iterable[str]
) -> dict[str, str]:
    """The values of the wanted secrets that exist, opened (in memory only)."""
    wanted = sorted(set(wanted))
    if not wanted:
        return {}
    rows = conn.execute(
        select(ProjectSecret.name, ProjectSecret.sealed).where(
            ProjectSecret.project_key == project_key, ProjectSecret.name.in_(wanted)
        )
    ).all()
    return {r.name: key.open(r.sealed, purpose=purpose(project_key, r.name)).decode() for r in rows}
