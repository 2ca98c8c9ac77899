"""Projects: the namespaces of workflows, runs and documents."""

from __future__ import annotations

from sqlalchemy import select

from awe.core.errors import NotFound
from awe.storage.database import Database
from awe.storage.models import Project


def project_key(db: Database, project: str | None) -> str:
    """The id of the project named ``project``, or '' for none; NotFound if it does not exist."""
    if project is None:
        return ""
    with db.read() as conn:
        found = conn.execute(select(Project.id).where(Project.name == project)).scalar()
    if found is None:
        raise NotFound(f"no project {project!r}")
    return str(found)
