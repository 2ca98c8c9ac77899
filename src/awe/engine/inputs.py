"""A run's inputs checked against the workflow's declared inputs: types, defaults, required."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from awe.core.errors import ValidationFailed
from awe.engine.spec import did_you_mean

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _coerce(name: str, kind: str, value: Any) -> Any:
    """``value`` as ``kind``; strings (from the command line) are converted."""
    if not isinstance(value, str) or kind == "string":
        return value
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "boolean":
            lowered = value.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError(value)
        return json.loads(value)  # array, object
    except ValueError:
        raise ValidationFailed(f"input {name}={value!r} is not a valid {kind}") from None


#: The declared input types and what values each accepts (an integer is a valid number).
INPUT_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _matches(kind: str, value: Any) -> bool:
    return INPUT_TYPES.get(kind, lambda v: True)(value)


def resolve_inputs(spec: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Declared inputs with defaults applied; ValidationFailed naming every problem."""
    declared: dict[str, Any] = spec.get("inputs") or {}
    problems = []
    resolved: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            problems.append(f"unknown input {name!r}" + did_you_mean(name, declared))
    for name, decl in declared.items():
        kind = decl.get("type", "string")
        if name in given:
            try:
                value = _coerce(name, kind, given[name])
            except ValidationFailed as exc:
                problems.append(exc.message)
                continue
            if not _matches(kind, value):
                problems.append(f"input {name}={value!r} is not a valid {kind}")
                continue
            resolved[name] = value
        elif "default" in decl:
            resolved[name] = decl["default"]
        elif decl.get("required", False):
            problems.append(f"input {name!r} is required ({kind})")
    if problems:
        raise ValidationFailed("; ".join(problems))
    return resolved
