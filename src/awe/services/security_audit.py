"""``awe security check`` as a use case."""

from __future__ import annotations

from collections.abc import Callable

from awe.core.config import Settings
from awe.ops import security
from awe.ops.doctor import Context
from awe.ops.report import Report
from awe.storage.database import Database


def check(settings: Settings, open_database: Callable[[], Database]) -> Report:
    """The security report of this installation."""
    return security.check(Context(settings=settings, open_database=open_database))
