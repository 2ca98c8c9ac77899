"""Who may run what: privileged kinds are for admins and the operator; members get the rest.

A run is *trusted* when the workflow it runs was pushed by an admin, the admin token, or the
operator's local CLI; a trusted run may use every kind. Any other run may use
only the kinds members may use: ``AWE_MEMBER_KINDS``, or by default every kind that is not
privileged. The check is made when a workflow is pushed, when a run starts, and on the worker
right before each step runs, so a setting changed later still holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from awe.core.config import Settings
from awe.core.errors import PermissionDenied, ValidationFailed
from awe.core.logging import get_logger
from awe.engine.registry import Registry

log = get_logger("permissions")


def member_capabilities(settings: Settings, registry: Registry) -> frozenset[str]:
    """What members may use: AWE_MEMBER_KINDS, or every unprivileged kind."""
    if settings.member_kinds is not None:
        return frozenset(k.strip() for k in settings.member_kinds.split(",") if k.strip())
    allowed = set()
    for name in registry.names():
        try:
            info = registry.info(name)
        except ValidationFailed as exc:  # a plugin that cannot load: no one may use it
            log.warning("step kind not available", kind=name, error=str(exc))
            continue
        if not info.privileged:
            allowed.add(name)
    return frozenset(allowed)


def capability(registry: Registry, kind: str, params: Any) -> str:
    """What a step of ``kind`` with ``params`` needs (``shell``, ``ingest:paths``, ``http``…)."""
    return registry.info(kind).capability(kind, params)


def refusal(step_id: str, needed: str) -> str:
    """Why a member may not use ``needed``, and what would allow it."""
    return (
        f"step {step_id!r} uses {needed!r}, which members may not use (a privileged kind: it"
        " runs code or reads the worker's files); an admin must push the workflow, or the"
        f" operator may add {needed!r} to AWE_MEMBER_KINDS"
    )


def refused_steps(
    steps: Iterable[dict[str, Any]], *, settings: Settings, registry: Registry
) -> list[str]:
    """The refusal of each step a member may not run (empty when every step is allowed)."""
    allowed = member_capabilities(settings, registry)
    found = []
    for step in steps:
        if not registry.knows(str(step.get("kind"))):
            continue  # the spec check reports unknown kinds
        needed = capability(registry, step["kind"], step.get("with"))
        if needed not in allowed:
            found.append(refusal(step["id"], needed))
    return found


def check_member_spec(spec: dict[str, Any], *, settings: Settings, registry: Registry) -> None:
    """Raise PermissionDenied (403) naming each step of ``spec`` a member may not run."""
    found = refused_steps(spec.get("steps") or [], settings=settings, registry=registry)
    if found:
        raise PermissionDenied("; ".join(found))
