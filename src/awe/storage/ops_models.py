"""Tables of operations: one row per operational command run (``awe doctor``, ``awe backup``…)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from awe.storage.engine_models import EventId
from awe.storage.models import Base
from awe.storage.types import UTCDateTime


class ScriptExecution(Base):
    """An operational command that ran: what, with which arguments (secrets masked), by whom,
    when, how it ended, and its report."""

    __tablename__ = "script_executions"
    __table_args__ = (Index("ix_script_executions_command_started", "command", "started_at"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    #: The command, words joined by spaces: "doctor", "backup create".
    command: Mapped[str] = mapped_column(String(100))
    #: The command line after ``awe``, with secret values masked.
    arguments: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Who ran it: "operator:<os user>@<host>", or a user's id.
    actor: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exit_code: Mapped[int] = mapped_column(Integer)
    #: The first line of what went wrong, when it did.
    error: Mapped[str | None] = mapped_column(Text)
    #: The command's report (a check report, a backup's manifest…), when it has one.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
