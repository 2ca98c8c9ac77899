"""Project secrets: API keys and passwords that steps read as ``{{ secrets.NAME }}``.

Values are sealed with the instance key before they are written (for their project and name),
listed by name only, and never shown again. The project's owner and admins may set and unset
them; the operator's CLI works on the default project (runs outside any project) unless told
another. Every change is audited, by name, never with the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.crypto import instance_key
from awe.core.errors import NotFound, ValidationFailed
from awe.engine.secret_refs import NAME_RE
from awe.services import audit
from awe.services.audit import Actor
from awe.services.projects import ProjectInfo
from awe.services.signing import check_instance_key
from awe.storage import secret_store
from awe.storage.database import Database

MAX_VALUE = 64 * 1024


@dataclass(frozen=True)
class SecretInfo:
    """A secret as listed: its name and when it was set, never its value."""

    name: str
    updated_at: datetime
    updated_by: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def _check(name: str, value: str) -> None:
    if not NAME_RE.match(name):
        raise ValidationFailed(
            f"secret name {name!r} must be an identifier (letters, digits, _; starting with a"
            " letter; 100 at most), so that templates can read secrets.<name>"
        )
    if not value:
        raise ValidationFailed("a secret's value may not be empty")
    if len(value) > MAX_VALUE:
        raise ValidationFailed(f"a secret's value may be {MAX_VALUE} characters at most")
    if "\x00" in value:
        raise ValidationFailed("a secret's value may not contain NUL characters")


def _where(project: ProjectInfo | None) -> tuple[str, str | None]:
    return (project.id, project.id) if project is not None else ("", None)


def set_secret(
    db: Database,
    settings: Settings,
    *,
    project: ProjectInfo | None,
    name: str,
    value: str,
    actor: Actor,
) -> bool:
    """Set a secret of ``project`` (None: the default project); True when it is new."""
    _check(name, value)
    key = instance_key(settings)
    check_instance_key(db, key)
    project_key, project_id = _where(project)
    with db.write() as conn:
        created = secret_store.put(
            conn,
            key,
            project_key=project_key,
            name=name,
            value=value,
            by=actor.id if actor.type == "user" else None,
            now=utcnow(),
        )
        audit.record(
            conn,
            actor,
            "secret.set",
            target_type="secret",
            target_id=name,
            project_id=project_id,
            details={"created": created},
        )
    return created


def list_secrets(db: Database, *, project: ProjectInfo | None) -> list[SecretInfo]:
    """The names of a project's secrets (None: the default project), by name."""
    project_key, _ = _where(project)
    with db.read() as conn:
        rows = secret_store.names(conn, project_key=project_key)
    return [SecretInfo(name, at, by) for name, at, by in rows]


def known_names(db: Database, *, project_key: str) -> set[str]:
    """The names of the secrets of the project with this key ('' for the default project)."""
    with db.read() as conn:
        return {name for name, _, _ in secret_store.names(conn, project_key=project_key)}


def unset(db: Database, *, project: ProjectInfo | None, name: str, actor: Actor) -> None:
    """Delete a secret; NotFound if the project has none of that name."""
    project_key, project_id = _where(project)
    with db.write() as conn:
        if not secret_store.remove(conn, project_key=project_key, name=name):
            raise NotFound(
                f"no secret {name!r}" + (f" in project {project.name!r}" if project else "")
            )
        audit.record(
            conn, actor, "secret.unset", target_type="secret", target_id=name, project_id=project_id
        )
