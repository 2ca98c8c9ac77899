"""The record of operational commands: each run of ``awe doctor``, ``awe backup …`` and the
others is a row of ``script_executions`` (arguments with secrets masked), read back by
``awe ops history`` and summed up as the ``script_*`` metrics."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from awe.core.config import Settings
from awe.core.errors import AweError
from awe.core.logging import get_logger
from awe.core.settings_export import secret_values
from awe.engine.secret_refs import MASK, Masker
from awe.services.tokens import operator_actor
from awe.storage.database import Database
from awe.storage.ops_models import ScriptExecution

log = get_logger("ops")

#: Options whose value is a secret: masked in the stored command line.
_SECRET_OPTION = re.compile(
    r"^--?[\w-]*(password|passwd|secret|token|api[-_]?key|private[-_]?key|credential)[\w-]*$",
    re.IGNORECASE,
)
#: Options whose value names a person (awe erase, awe pii find): masked too, so the record of
#: an erasure does not keep the very value it erased.
_PERSONAL_OPTION = re.compile(r"^--(email|value)$", re.IGNORECASE)
#: How many executions ``history`` lists at most.
HISTORY_LIMIT = 1000
#: Exit codes that count as a success in ``script_execution_status`` (10: dry run completed).
SUCCESS_CODES = frozenset({0, 10})


def operator(*, run_id: str | None = None) -> str:
    """Who runs a command of the local CLI: the operating-system user on this host, and the run
    whose step started it (a runbook's ``awe`` step)."""
    who = f"operator:{operator_actor().id}@{socket.gethostname()}"
    return f"{who} run:{run_id[:40]}" if run_id else who


def masked_arguments(arguments: Sequence[str], settings: Settings | None = None) -> list[str]:
    """The command line with secret values hidden: values of secret-looking options and of
    ``--email`` / ``--value`` (both ``--token X`` and ``--token=X``), and any configured secret
    wherever it appears."""
    known = Masker(secret_values(settings) if settings is not None else [])
    shown: list[str] = []
    hide_next = False
    for argument in arguments:
        if hide_next:
            shown.append(MASK)
            hide_next = False
            continue
        name, equals, _ = argument.partition("=")
        if _SECRET_OPTION.match(name) or _PERSONAL_OPTION.match(name):
            if equals:
                shown.append(f"{name}={MASK}")
            else:
                shown.append(argument)
                hide_next = True
            continue
        shown.append(known.text(argument))
    return shown


@dataclass(frozen=True)
class Execution:
    """One recorded run of an operational command."""

    id: int
    command: str
    arguments: list[str]
    actor: str
    started_at: datetime
    finished_at: datetime
    exit_code: int
    error: str | None
    report: dict[str, Any] | None

    @property
    def duration_seconds(self) -> float:
        """How long it ran."""
        return (self.finished_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**asdict(self), "duration_seconds": round(self.duration_seconds, 3)}


def record(
    db: Database,
    *,
    command: str,
    arguments: Sequence[str],
    actor: str,
    started_at: datetime,
    finished_at: datetime,
    exit_code: int,
    error: str | None = None,
    report: dict[str, Any] | None = None,
) -> bool:
    """Write one execution. False (with a warning logged) when the database cannot take it,
    for a command that ran while the database was down or behind: the command's own outcome
    is what matters then, not its record."""
    known = Masker(secret_values(db.settings))
    try:
        # JSON as the CLI prints it (a date becomes its text): a report never breaks its record.
        shown = json.loads(json.dumps(report, default=str))
    except (TypeError, ValueError):  # keys JSON cannot have, or a cycle
        shown = {"unrecorded": "the report could not be written as JSON"}
    row = {
        "command": command,
        "arguments": masked_arguments(arguments, db.settings),
        "actor": actor,
        "started_at": started_at,
        "finished_at": finished_at,
        "exit_code": exit_code,
        "error": known.text(error.splitlines()[0])[:2000] if error else None,
        "report": known.value(shown),
    }
    try:
        with db.write() as conn:
            conn.execute(insert(ScriptExecution), row)
    except (SQLAlchemyError, AweError) as exc:
        log.warning(
            "this run is not in script_executions: the database did not take it",
            reason=str(exc).splitlines()[0][:200],
        )
        return False
    return True


def history(db: Database, *, command: str | None = None, limit: int = 50) -> list[Execution]:
    """Recorded executions, newest first (of one command, when given)."""
    statement = select(ScriptExecution).order_by(ScriptExecution.id.desc())
    if command:
        statement = statement.where(ScriptExecution.command == command)
    with db.read() as conn:
        rows = conn.execute(statement.limit(min(max(limit, 1), HISTORY_LIMIT))).all()
    return [_execution(r._mapping) for r in rows]


def latest_by_command(db: Database) -> list[Execution]:
    """The last execution of every command (what the metrics show)."""
    newest = (
        select(func.max(ScriptExecution.id)).group_by(ScriptExecution.command).scalar_subquery()
    )
    with db.read() as conn:
        rows = conn.execute(
            select(ScriptExecution)
            .where(ScriptExecution.id.in_(newest))
            .order_by(ScriptExecution.command)
        ).all()
    return [_execution(r._mapping) for r in rows]


def _execution(row: Any) -> Execution:
    return Execution(
        id=int(row["id"]),
        command=str(row["command"]),
        arguments=list(row["arguments"] or []),
        actor=str(row["actor"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=int(row["exit_code"]),
        error=row["error"],
        report=row["report"],
    )
