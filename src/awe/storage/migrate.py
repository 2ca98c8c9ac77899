"""Schema migrations: Alembic, shipped inside the package and driven without an ``alembic.ini``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData

from awe.core.errors import AweError, ValidationFailed
from awe.storage.database import Database
from awe.storage.knowledge_models import HNSW_INDEX_PREFIX, Embedding
from awe.storage.privacy import CleanText, SealedBytes, SealedJSON, SealedText
from awe.storage.types import UTCDateTime

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaDrift(AweError):
    """The database schema and the models differ."""

    exit_code = 1
    http_status = 500
    code = "schema-drift"


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Render our UTC column as the plain type, so migrations never import application code.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, SealedJSON):
        return "sa.JSON()"
    if type_ == "type" and isinstance(obj, SealedText | CleanText):
        return "sa.Text()"
    if type_ == "type" and isinstance(obj, SealedBytes):
        return "sa.LargeBinary()"
    if type_ == "type" and isinstance(obj, Embedding):
        return "sa.LargeBinary()  # pgvector's vector on PostgreSQL: see 0006"
    return False


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # The HNSW indexes are expressions per vector size that only migrations create.
    return not (type_ == "index" and (name or "").startswith(HNSW_INDEX_PREFIX))


def _compare_type(
    context: Any, inspected: Any, metadata: Any, inspected_type: Any, metadata_type: Any
) -> bool | None:
    # An embedding is pgvector's vector on PostgreSQL and bytes on SQLite: both are right.
    if isinstance(metadata_type, Embedding):
        expected = "vector" if context.dialect.name == "postgresql" else "blob"
        return expected not in str(inspected_type).lower()
    return None


def context_options(connection: Connection) -> dict[str, Any]:
    """Options for Alembic's context, shared by migrations, autogenerate and ``check``."""
    return {
        "compare_type": _compare_type,
        "include_object": _include_object,
        "render_as_batch": connection.dialect.name == "sqlite",
        "render_item": _render_item,
    }


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def upgrade(db: Database, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    with db.schema_change() as conn:
        command.upgrade(_config(conn), revision)


def downgrade(db: Database, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` removes every table)."""
    with db.schema_change() as conn:
        command.downgrade(_config(conn), revision)


def reverting(db: Database, target: str) -> list[str]:
    """The revisions ``downgrade(target)`` would revert, newest first; ValidationFailed for a
    target that is not a shipped revision or ``base`` (relative ones such as -1 included: say
    exactly where to go)."""
    shipped = {r.revision for r in _script().walk_revisions()}
    if target != "base" and (not target.isalnum() or target not in shipped):
        raise ValidationFailed(
            f"{target!r} is not a revision: give one of awe db history's, or base"
        )
    current = status(db).current
    if not current:
        return []
    upper = current[0] if len(current) == 1 else "heads"
    revisions = _script().iterate_revisions(upper, target)
    return [script.revision for script in revisions if script is not None]


@dataclass(frozen=True)
class Status:
    """Where the database stands against the shipped migrations."""

    current: tuple[str, ...]
    heads: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        """True when the database is at every head."""
        return set(self.current) == set(self.heads)


def status(db: Database) -> Status:
    """The database's current revisions and the migrations' heads."""
    with db.read() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return Status(current=tuple(current), heads=tuple(_script().get_heads()))


def pending(db: Database, target: str = "head") -> list[str]:
    """The revisions ``upgrade(target)`` would apply, oldest first."""
    current = status(db).current
    lower = current[0] if len(current) == 1 else "base"
    revisions = _script().iterate_revisions(target, lower)
    return [script.revision for script in reversed(list(revisions)) if script is not None]


@dataclass(frozen=True)
class Revision:
    """One shipped migration."""

    revision: str
    down_revision: str | None
    message: str


def history() -> list[Revision]:
    """Every shipped migration, newest first."""
    revisions = []
    for script in _script().walk_revisions():
        down = script.down_revision
        revisions.append(
            Revision(
                revision=script.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                message=script.doc or "",
            )
        )
    return revisions


def revision(db: Database, message: str) -> Path:
    """Autogenerate a new migration from the difference between the models and the database."""
    next_id = f"{len(history()) + 1:04d}"
    with db.write() as conn:
        script = command.revision(_config(conn), message=message, autogenerate=True, rev_id=next_id)
    assert script is not None
    assert not isinstance(script, list)
    return Path(script.path)


def differences(db: Database, metadata: MetaData | None = None) -> list[str]:
    """What autogenerate would change to make the database match ``metadata`` (the models)."""
    if metadata is None:
        from awe.storage.schema import metadata as models_metadata

        metadata = models_metadata
    with db.read() as conn:
        context = MigrationContext.configure(conn, opts=context_options(conn))
        diffs = compare_metadata(context, metadata)
    return [_describe(diff) for diff in diffs]


def check(db: Database, metadata: MetaData | None = None) -> None:
    """Raise SchemaDrift unless the database is at head and matches the models exactly."""
    state = status(db)
    if not state.up_to_date:
        raise SchemaDrift(
            f"the database is at {', '.join(state.current) or 'no revision'} but the migrations'"
            f" head is {', '.join(state.heads)}; run 'awe db upgrade'"
        )
    diffs = differences(db, metadata)
    if diffs:
        raise SchemaDrift(
            "the models differ from the migrations; create one with 'awe db revision -m MSG': "
            + "; ".join(diffs)
        )


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column-level changes come grouped
        return ", ".join(_describe(item) for item in diff)
    kind, *rest = diff
    names = [getattr(item, "name", None) or str(item) for item in rest if item is not None]
    return f"{kind} {' '.join(str(n) for n in names[:3])}".strip()


__all__ = [
    "Revision",
    "SchemaDrift",
    "Status",
    "check",
    "differences",
    "downgrade",
    "history",
    "pending",
    "revision",
    "status",
    "upgrade",
]
