"""Step kinds, found by name through the entry-point group ``awe.steps``.

A kind is a callable ``run(ctx, params) -> JSON-serialisable output``. Built-in kinds register
through the same entry points a third-party package would use, and declare what they are with
:func:`step_kind`: the ``with:`` keys they accept, and whether they are *privileged* (they run
code or read the machine, so only admins and the operator may use them). A kind that declares
nothing is treated as privileged: safe by default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from awe.core.errors import ValidationFailed

if TYPE_CHECKING:
    from awe.engine.context import StepContext

StepKind = Callable[["StepContext", Any], Any]
ENTRY_POINT_GROUP = "awe.steps"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class KindInfo:
    """What a kind declares about itself."""

    #: The ``with:`` keys it accepts; None when the kind does not say (nothing is checked).
    keys: frozenset[str] | None = None
    #: It runs code or reads the machine: members may not use it unless AWE_MEMBER_KINDS says.
    privileged: bool = True
    #: Keys that make an otherwise unprivileged kind privileged (``ingest`` with ``paths``).
    privileged_keys: frozenset[str] = frozenset()
    #: True when the kind declared itself (with :func:`step_kind`).
    declared: bool = False
    #: Checks literal ``with:`` values when a file is validated: (key, problem) pairs.
    check: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None

    def capability(self, name: str, params: Any) -> str:
        """What using this kind with ``params`` needs: ``kind``, or ``kind:key`` for a key that
        makes it privileged (``ingest:paths``)."""
        if isinstance(params, dict):
            for key in sorted(self.privileged_keys):
                if key in params:
                    return f"{name}:{key}"
        return name


def step_kind(
    *,
    keys: Iterable[str] | None,
    privileged: bool = False,
    privileged_keys: Iterable[str] = (),
    check: Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None,
) -> Callable[[F], F]:
    """Declare a step kind's ``with:`` keys and privilege (use on the kind's function);
    ``check`` finds problems in literal ``with:`` values when a workflow file is validated."""
    info = KindInfo(
        keys=None if keys is None else frozenset(keys),
        privileged=privileged,
        privileged_keys=frozenset(privileged_keys),
        declared=True,
        check=check,
    )

    def mark(function: F) -> F:
        function.awe_kind = info  # type: ignore[attr-defined]
        return function

    return mark


def info_of(kind: StepKind) -> KindInfo:
    """The declaration of a kind's function (privileged and unchecked when it has none)."""
    found = getattr(kind, "awe_kind", None)
    return found if isinstance(found, KindInfo) else KindInfo()


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
                try:
                    self._kinds[name] = point.load()
                except Exception as exc:  # noqa: BLE001 - a broken plugin is that kind's problem
                    raise ValidationFailed(
                        f"step kind {name!r} could not be loaded ({point.value}):"
                        f" {type(exc).__name__}: {exc}"
                    ) from None
            return self._kinds[name]

    def info(self, name: str) -> KindInfo:
        """What the kind ``name`` declares; ValidationFailed when there is no such kind."""
        return info_of(self.get(name))


default_registry = Registry()
