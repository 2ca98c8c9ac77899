"""Step kinds, found by name through the entry-point group ``awe.steps``.

A kind is a callable ``run(ctx, params) -> JSON-serialisable output``. Built-in kinds register
through the same entry points a third-party package would use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from awe.core.errors import ValidationFailed

if TYPE_CHECKING:
    from awe.engine.context import StepContext

StepKind = Callable[["StepContext", Any], Any]
ENTRY_POINT_GROUP = "awe.steps"


class Registry:
    """Name → step kind, loaded from entry points on first use; tests may register more."""

    def __init__(self) -> None:
        self._kinds: dict[str, StepKind] = {}
        self._points: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _entry_points(self) -> dict[str, Any]:
        if self._points is None:
            self._points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        return self._points

    def register(self, name: str, kind: StepKind) -> None:
        """Make ``kind`` available as ``name`` in this process."""
        with self._lock:
            self._kinds[name] = kind

    def names(self) -> set[str]:
        """Every kind name known."""
        return set(self._kinds) | set(self._entry_points())

    def knows(self, name: str) -> bool:
        """True when ``name`` is a kind."""
        return name in self._kinds or name in self._entry_points()

    def get(self, name: str) -> StepKind:
        """The kind called ``name``; ValidationFailed when there is none."""
        with self._lock:
            if name not in self._kinds:
                point = self._entry_points().get(name)
                if point is None:
                    raise ValidationFailed(f"unknown step kind {name!r}")
                self._kinds[name] = point.load()
            return self._kinds[name]


default_registry = Registry()
