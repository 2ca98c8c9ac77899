"""Tables of secrets: project secrets for steps, and the installation's own shared state.

Values are sealed with the instance key (core/crypto.py) before they are written; these tables
never hold a secret in clear.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from awe.core.clock import utcnow
from awe.core.ids import new_id
from awe.storage.models import ID_LENGTH, Base
from awe.storage.types import UTCDateTime


class ProjectSecret(Base):
    """A named secret of a project, for steps to read as ``{{ secrets.NAME }}``."""

    __tablename__ = "project_secrets"
    __table_args__ = (UniqueConstraint("project_key", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    #: The project's id, or '' for the operator's default project (runs outside any project).
    project_key: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    name: Mapped[str] = mapped_column(String(100))
    #: The value, sealed for this project and name (it opens nowhere else).
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Who set it last (a user id; None for the operator's CLI and the admin token).
    updated_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))


class InstanceState(Base):
    """A named value every process of the installation shares (the token signing secret,
    the instance key's fingerprint, the one-time setup token's hash)."""

    __tablename__ = "instance_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
