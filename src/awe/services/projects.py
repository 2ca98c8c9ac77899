"""Projects: the namespaces of workflows, runs and documents, each owned by one user.

Members see only the projects they own; admins see every project. A project another user owns
is "not found" to a member, never "forbidden", so ids do not leak what exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from awe.core.clock import utcnow
from awe.core.errors import Conflict, NotFound, ValidationFailed
from awe.core.ids import new_id
from awe.engine.spec import NAME_RE
from awe.services import audit
from awe.services.audit import Actor
from awe.services.tokens import Principal
from awe.storage import secret_store
from awe.storage.database import Database
from awe.storage.engine_models import Workflow
from awe.storage.knowledge_models import Document
from awe.storage.models import Project, User

#: The shape of ids (UUIDs in canonical form).
ID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@dataclass(frozen=True)
class ProjectInfo:
    """A project as the API shows it."""

    id: str
    name: str
    description: str
    owner_id: str
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.__dict__.items()
        }


def project_key(db: Database, project: str | None) -> str:
    """The id of the project named ``project``, or '' for none; NotFound if it does not exist."""
    if project is None:
        return ""
    with db.read() as conn:
        found = conn.execute(select(Project.id).where(Project.name == project)).scalar()
    if found is None:
        raise NotFound(f"no project {project!r}")
    return str(found)


def _info(row: Any) -> ProjectInfo:
    return ProjectInfo(
        row.id, row.name, row.description, row.owner_id, row.created_at, row.updated_at
    )


def looks_like_id(ref: str) -> bool:
    """True when ``ref`` has the shape of an id (a project name never does)."""
    return bool(ID_SHAPE.match(ref))


def visible(db: Database, principal: Principal, ref: str) -> ProjectInfo:
    """The project with this id or name, if the principal may see it; NotFound otherwise.

    What looks like an id is looked up as an id only, anything else as a name only: since no
    name may look like an id, a reference never means two projects.
    """
    column = Project.id if looks_like_id(ref) else Project.name
    with db.read() as conn:
        row = conn.execute(select(Project.__table__).where(column == ref)).first()
    if row is None or not (principal.is_admin or row.owner_id == principal.user_id):
        raise NotFound(f"no project {ref}")
    return _info(row)


def visible_ids(db: Database, principal: Principal) -> set[str] | None:
    """The ids of the projects the principal may see; None for every project (admins)."""
    if principal.is_admin:
        return None
    with db.read() as conn:
        ids = conn.execute(select(Project.id).where(Project.owner_id == principal.user_id))
        return {str(i) for i in ids.scalars()}


def list_visible(db: Database, principal: Principal) -> list[ProjectInfo]:
    """The projects the principal may see, by name."""
    statement = select(Project.__table__).order_by(Project.name)
    if not principal.is_admin:
        statement = statement.where(Project.owner_id == principal.user_id)
    with db.read() as conn:
        return [_info(r) for r in conn.execute(statement).all()]


def create(
    db: Database,
    principal: Principal,
    *,
    name: str,
    description: str = "",
    owner_id: str | None = None,
    actor: Actor,
) -> ProjectInfo:
    """A new project owned by the principal (an admin may name another owner)."""
    if not NAME_RE.match(name) or len(name) > 100:
        raise ValidationFailed(f"project name {name!r} must match [a-z0-9][a-z0-9-]* (100 at most)")
    if looks_like_id(name):
        raise ValidationFailed(
            f"project name {name!r} looks like an id; choose a name that does not, so that a"
            " reference to a project by id or name is never ambiguous"
        )
    owner = owner_id if (owner_id and principal.is_admin) else principal.user_id
    if owner is None:
        raise ValidationFailed("the admin token acts for no user: give owner_id")
    now = utcnow()
    project_id = new_id()
    with db.write() as conn:
        if conn.execute(select(Project.id).where(Project.name == name)).first() is not None:
            raise Conflict(f"a project named {name!r} exists already")
        if conn.execute(select(User.id).where(User.id == owner)).first() is None:
            raise ValidationFailed(f"owner_id {owner!r} is not a user's id (GET /api/v1/users)")
        conn.execute(
            insert(Project).values(
                id=project_id,
                name=name,
                description=description,
                owner_id=owner,
                created_at=now,
                updated_at=now,
            )
        )
        audit.record(
            conn,
            actor,
            "project.create",
            target_type="project",
            target_id=project_id,
            project_id=project_id,
            details={"name": name},
        )
    return visible(db, principal, project_id)


def update_description(
    db: Database, principal: Principal, ref: str, *, description: str, actor: Actor
) -> ProjectInfo:
    """Change a visible project's description."""
    project = visible(db, principal, ref)
    with db.write() as conn:
        conn.execute(
            update(Project)
            .where(Project.id == project.id)
            .values(description=description, updated_at=utcnow())
        )
        audit.record(
            conn,
            actor,
            "project.update",
            target_type="project",
            target_id=project.id,
            project_id=project.id,
        )
    return visible(db, principal, project.id)


def remove(db: Database, principal: Principal, ref: str, *, actor: Actor) -> None:
    """Delete a visible project with its runs, workflows, schedules and documents."""
    project = visible(db, principal, ref)
    with db.write() as conn:
        conn.execute(delete(Workflow).where(Workflow.project_key == project.id))
        secret_store.remove_project(conn, project_key=project.id)
        conn.execute(delete(Document).where(Document.project_key == project.id))
        conn.execute(delete(Project).where(Project.id == project.id))  # runs, schedules cascade
        audit.record(
            conn,
            actor,
            "project.delete",
            target_type="project",
            target_id=project.id,
            details={"name": project.name},
        )
