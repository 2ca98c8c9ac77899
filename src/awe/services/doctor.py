"""``awe doctor`` as a use case: which checks, run over this installation's settings and
database (the MCP ``doctor`` tool and the runbooks call the same)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from awe.core.config import Settings
from awe.ops import doctor as probes_of
from awe.ops.doctor import Context, Probe
from awe.ops.report import Report, Status
from awe.storage.database import Database

__all__ = ["Probe", "Report", "Status", "check", "chosen"]


def chosen(only: Iterable[str], skip: Iterable[str]) -> list[Probe]:
    """The checks of ``only`` (groups or ids; all when empty) less those of ``skip``."""
    return probes_of.select(probes_of.probes(), only=only, skip=skip)


def check(
    settings: Settings,
    open_database: Callable[[], Database],
    probes: Iterable[Probe],
    *,
    fix: bool = False,
    progress: Callable[[Probe], Any] | None = None,
) -> Report:
    """Run the checks; with ``fix``, repair what is safe and check again."""
    context = Context(settings=settings, open_database=open_database)
    return probes_of.run(context, probes, fix=fix, progress=progress)
