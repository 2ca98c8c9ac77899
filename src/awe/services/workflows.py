"""Stored workflows: immutable versions, pushed from files, listed, shown and compared.

A version remembers who pushed it and whether it is *trusted* (pushed by an admin, the admin
token or the operator's CLI): runs of a trusted version may use privileged kinds, whoever starts
them; a member may not push a workflow that uses one (engine/permissions.py). Pushing checks the
secrets the workflow reads exist in the project, and that no workflow step calls back into it.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import func, insert, select

from awe.core.clock import utcnow
from awe.core.errors import NotFound, ValidationFailed
from awe.engine import children, permissions
from awe.engine.files import MAX_DEPTH, Problem, WorkflowFileInvalid, load_file, load_text
from awe.engine.registry import default_registry
from awe.services import audit, schedules
from awe.services.audit import Actor
from awe.services.projects import project_key
from awe.services.secrets import known_names
from awe.services.tokens import OPERATOR, Principal, operator_actor
from awe.storage.database import Database
from awe.storage.engine_models import Workflow
from awe.storage.privacy import readable


@dataclass(frozen=True)
class WorkflowVersion:
    """One stored version."""

    name: str
    version: int
    spec: dict[str, Any]
    source: str
    created_at: datetime
    #: Pushed by an admin or the operator: its runs may use privileged kinds.
    trusted: bool = True
    pushed_by: str | None = None

    def shown_source(self) -> str:
        """The YAML source as it may be shown (scrubbed in privacy mode)."""
        return str(readable(self.source))

    def shown_spec(self) -> dict[str, Any]:
        """The spec as it may be shown (scrubbed in privacy mode)."""
        return dict(readable(self.spec))

    def summary(self) -> dict[str, Any]:
        """Name, version, description and step count, JSON-ready."""
        return {
            "name": self.name,
            "version": self.version,
            "description": readable(self.spec.get("description", "")),
            "steps": len(self.spec["steps"]),
            "created_at": self.created_at.isoformat(),
            "trusted": self.trusted,
        }


def push(
    db: Database, path: Path, *, project: str | None = None, actor: Actor | None = None
) -> tuple[WorkflowVersion, bool]:
    """Store the file as the workflow's next version, as the operator; (version, False) if
    unchanged since the last one.

    The workflow's schedule follows its latest version (see :mod:`awe.services.schedules`).
    """
    key = project_key(db, project)
    spec = load_file(
        path, known_kind=default_registry.knows, known_secrets=known_names(db, project_key=key)
    )
    source = path.read_text(encoding="utf-8-sig")
    return _push(db, spec, source, project, OPERATOR, actor or operator_actor())


def push_source(
    db: Database,
    source: str,
    *,
    name: str = "workflow.yaml",
    project: str | None = None,
    principal: Principal = OPERATOR,
    actor: Actor | None = None,
    schedule_enabled: bool = True,
) -> tuple[WorkflowVersion, bool]:
    """Store YAML text as its workflow's next version, pushed by ``principal``
    (``schedule_enabled``: whether a schedule it creates starts enabled)."""
    key = project_key(db, project)
    spec = load_text(
        source,
        source=name,
        known_kind=default_registry.knows,
        known_secrets=known_names(db, project_key=key),
    )
    actor = actor or principal.actor(None, None)
    return _push(db, spec, source, project, principal, actor, schedule_enabled=schedule_enabled)


def spec_as_yaml(spec: dict[str, Any]) -> str:
    """A JSON spec written as the YAML file it stands for (kept as the version's source);
    ValidationFailed for one nested past what a workflow file may be."""
    _check_depth(spec)
    out = io.StringIO()
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.dump(spec, out)
    return out.getvalue()


def _check_depth(value: Any) -> None:
    """Refuse JSON nested deeper than a workflow file may be, before anything recurses into it."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "spec")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationFailed(f"{where}: the spec is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(item))


def validate_source(
    source: str, *, name: str = "workflow.yaml", known_secrets: set[str] | None = None
) -> list[Problem]:
    """Every located problem of workflow YAML ([] when valid); nothing is stored.

    ``known_secrets``: the names of the project's secrets, when the project is known (a template
    reading another name is then a problem).
    """
    try:
        load_text(
            source, source=name, known_kind=default_registry.knows, known_secrets=known_secrets
        )
    except WorkflowFileInvalid as exc:
        return exc.problems
    return []


def _push(
    db: Database,
    spec: dict[str, Any],
    source: str,
    project: str | None,
    principal: Principal,
    actor: Actor,
    *,
    schedule_enabled: bool = True,
) -> tuple[WorkflowVersion, bool]:
    key = project_key(db, project)
    trusted = principal.is_admin
    if not trusted:
        permissions.check_member_spec(spec, settings=db.settings, registry=default_registry)
    with db.read() as conn:
        children.check_calls(conn, spec, project_key=key, max_depth=db.settings.max_workflow_depth)
    stored, created = _store(db, spec, source, key, trusted=trusted, by=principal.user_id)
    schedules.sync_workflow(
        db,
        spec=stored.spec,
        version=stored.version,
        project=project,
        project_id=key or None,
        trusted=stored.trusted,
        enabled=schedule_enabled,
    )
    audit.record_now(
        db,
        actor,
        "workflow.push",
        target_type="workflow",
        target_id=f"{stored.name}@{stored.version}",
        project_id=key or None,
        details={"created": created, "trusted": stored.trusted},
    )
    return stored, created


_COLUMNS = (
    Workflow.name,
    Workflow.version,
    Workflow.spec,
    Workflow.source,
    Workflow.created_at,
    Workflow.trusted,
    Workflow.pushed_by,
)


def _version(row: Any) -> WorkflowVersion:
    return WorkflowVersion(
        row.name,
        row.version,
        row.spec,
        row.source,
        row.created_at,
        trusted=bool(row.trusted),
        pushed_by=row.pushed_by,
    )


def versions(db: Database, name: str, *, project: str | None = None) -> list[WorkflowVersion]:
    """Every stored version of a workflow, newest first; NotFound if there is none."""
    key = project_key(db, project)
    with db.read() as conn:
        rows = conn.execute(
            select(*_COLUMNS)
            .where(Workflow.project_key == key, Workflow.name == name)
            .order_by(Workflow.version.desc())
        ).all()
    if not rows:
        raise NotFound(f"no stored workflow {name!r}")
    return [_version(r) for r in rows]


def _store(
    db: Database, spec: dict[str, Any], source: str, key: str, *, trusted: bool, by: str | None
) -> tuple[WorkflowVersion, bool]:
    with db.write() as conn:
        latest = conn.execute(
            select(*_COLUMNS)
            .where(Workflow.project_key == key, Workflow.name == spec["name"])
            .order_by(Workflow.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.spec == spec and bool(latest.trusted) == trusted:
            return _version(latest), False
        version = 1 if latest is None else latest.version + 1
        now = utcnow()
        conn.execute(
            insert(Workflow).values(
                project_key=key,
                name=spec["name"],
                version=version,
                spec=spec,
                source=source,
                pushed_by=by,
                trusted=trusted,
                created_at=now,
            )
        )
    return WorkflowVersion(spec["name"], version, spec, source, now, trusted, by), True


def get(
    db: Database, name: str, *, version: int | None = None, project: str | None = None
) -> WorkflowVersion:
    """A stored version (the latest unless ``version`` is given); NotFound if none."""
    key = project_key(db, project)
    statement = select(*_COLUMNS).where(Workflow.project_key == key, Workflow.name == name)
    if version is not None:
        statement = statement.where(Workflow.version == version)
    with db.read() as conn:
        row = conn.execute(statement.order_by(Workflow.version.desc()).limit(1)).first()
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound(f"no stored workflow {name!r}{which}")
    return _version(row)


def latest_versions(db: Database, *, project: str | None = None) -> list[WorkflowVersion]:
    """The latest version of every stored workflow, by name."""
    key = project_key(db, project)
    newest = (
        select(Workflow.name, func.max(Workflow.version).label("version"))
        .where(Workflow.project_key == key)
        .group_by(Workflow.name)
        .subquery()
    )
    with db.read() as conn:
        rows = conn.execute(
            select(*_COLUMNS)
            .join(newest, (newest.c.name == Workflow.name) & (newest.c.version == Workflow.version))
            .where(Workflow.project_key == key)
            .order_by(Workflow.name)
        ).all()
    return [_version(r) for r in rows]


def diff(db: Database, name: str, old: int, new: int, *, project: str | None = None) -> str:
    """A unified diff of two versions' sources."""
    a = get(db, name, version=old, project=project)
    b = get(db, name, version=new, project=project)
    return "".join(
        difflib.unified_diff(
            a.shown_source().splitlines(keepends=True),
            b.shown_source().splitlines(keepends=True),
            f"{name}@{old}",
            f"{name}@{new}",
        )
    )
