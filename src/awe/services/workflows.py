"""Stored workflows: immutable versions, pushed from files, listed, shown and compared."""

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
from awe.core.errors import NotFound
from awe.engine.files import Problem, WorkflowFileInvalid, load_file, load_text
from awe.engine.registry import default_registry
from awe.services import schedules
from awe.services.projects import project_key
from awe.storage.database import Database
from awe.storage.engine_models import Workflow


@dataclass(frozen=True)
class WorkflowVersion:
    """One stored version."""

    name: str
    version: int
    spec: dict[str, Any]
    source: str
    created_at: datetime

    def summary(self) -> dict[str, Any]:
        """Name, version, description and step count, JSON-ready."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.spec.get("description", ""),
            "steps": len(self.spec["steps"]),
            "created_at": self.created_at.isoformat(),
        }


def push(db: Database, path: Path, *, project: str | None = None) -> tuple[WorkflowVersion, bool]:
    """Store the file as the workflow's next version; (version, False) if unchanged since last.

    The workflow's schedule follows its latest version (see :mod:`awe.services.schedules`).
    """
    spec = load_file(path, known_kind=default_registry.knows)
    return _push(db, spec, path.read_text(encoding="utf-8-sig"), project)


def push_source(
    db: Database, source: str, *, name: str = "workflow.yaml", project: str | None = None
) -> tuple[WorkflowVersion, bool]:
    """Store YAML text as its workflow's next version (as :func:`push` does a file)."""
    spec = load_text(source, source=name, known_kind=default_registry.knows)
    return _push(db, spec, source, project)


def spec_as_yaml(spec: dict[str, Any]) -> str:
    """A JSON spec written as the YAML file it stands for (kept as the version's source)."""
    out = io.StringIO()
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.dump(spec, out)
    return out.getvalue()


def validate_source(source: str, *, name: str = "workflow.yaml") -> list[Problem]:
    """Every located problem of workflow YAML ([] when valid); nothing is stored."""
    try:
        load_text(source, source=name, known_kind=default_registry.knows)
    except WorkflowFileInvalid as exc:
        return exc.problems
    return []


def _push(
    db: Database, spec: dict[str, Any], source: str, project: str | None
) -> tuple[WorkflowVersion, bool]:
    key = project_key(db, project)
    stored, created = _store(db, spec, source, key)
    schedules.sync_workflow(
        db, spec=stored.spec, version=stored.version, project=project, project_id=key or None
    )
    return stored, created


def versions(db: Database, name: str, *, project: str | None = None) -> list[WorkflowVersion]:
    """Every stored version of a workflow, newest first; NotFound if there is none."""
    key = project_key(db, project)
    with db.read() as conn:
        rows = conn.execute(
            select(
                Workflow.name, Workflow.version, Workflow.spec, Workflow.source, Workflow.created_at
            )
            .where(Workflow.project_key == key, Workflow.name == name)
            .order_by(Workflow.version.desc())
        ).all()
    if not rows:
        raise NotFound(f"no stored workflow {name!r}")
    return [WorkflowVersion(r.name, r.version, r.spec, r.source, r.created_at) for r in rows]


def _store(
    db: Database, spec: dict[str, Any], source: str, key: str
) -> tuple[WorkflowVersion, bool]:
    with db.write() as conn:
        latest = conn.execute(
            select(Workflow.version, Workflow.spec, Workflow.source, Workflow.created_at)
            .where(Workflow.project_key == key, Workflow.name == spec["name"])
            .order_by(Workflow.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.spec == spec:
            return WorkflowVersion(
                spec["name"], latest.version, latest.spec, latest.source, latest.created_at
            ), False
        version = 1 if latest is None else latest.version + 1
        now = utcnow()
        conn.execute(
            insert(Workflow).values(
                project_key=key,
                name=spec["name"],
                version=version,
                spec=spec,
                source=source,
                created_at=now,
            )
        )
    return WorkflowVersion(spec["name"], version, spec, source, now), True


def get(
    db: Database, name: str, *, version: int | None = None, project: str | None = None
) -> WorkflowVersion:
    """A stored version (the latest unless ``version`` is given); NotFound if none."""
    key = project_key(db, project)
    statement = select(
        Workflow.name, Workflow.version, Workflow.spec, Workflow.source, Workflow.created_at
    ).where(Workflow.project_key == key, Workflow.name == name)
    if version is not None:
        statement = statement.where(Workflow.version == version)
    with db.read() as conn:
        row = conn.execute(statement.order_by(Workflow.version.desc()).limit(1)).first()
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound(f"no stored workflow {name!r}{which}")
    return WorkflowVersion(row.name, row.version, row.spec, row.source, row.created_at)


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
            select(
                Workflow.name, Workflow.version, Workflow.spec, Workflow.source, Workflow.created_at
            )
            .join(newest, (newest.c.name == Workflow.name) & (newest.c.version == Workflow.version))
            .where(Workflow.project_key == key)
            .order_by(Workflow.name)
        ).all()
    return [WorkflowVersion(r.name, r.version, r.spec, r.source, r.created_at) for r in rows]


def diff(db: Database, name: str, old: int, new: int, *, project: str | None = None) -> str:
    """A unified diff of two versions' sources."""
    a = get(db, name, version=old, project=project)
    b = get(db, name, version=new, project=project)
    return "".join(
        difflib.unified_diff(
            a.source.splitlines(keepends=True),
            b.source.splitlines(keepends=True),
            f"{name}@{old}",
            f"{name}@{new}",
        )
    )
