"""Built-in kind ``python``: call an importable function.

``with: {function: "package.module:name", args: [...], kwargs: {...}}``. A function with a
parameter named ``ctx`` also receives the step context.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.registry import step_kind


@step_kind(keys={"function", "args", "kwargs"}, privileged=True)
def run_python(ctx: StepContext, params: Any) -> Any:
    """Call ``with.function`` with ``args`` and ``kwargs``; what it returns is the output."""
    if not isinstance(params, dict) or not isinstance(params.get("function"), str):
        raise ValidationFailed("python needs with.function as 'module:name'")
    target = params["function"]
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValidationFailed(f"python: {target!r} is not 'module:name'")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValidationFailed(f"python: cannot import {target!r}: {exc}") from None
    args = params.get("args", [])
    kwargs = dict(params.get("kwargs", {}))
    if "ctx" in inspect.signature(function).parameters:
        kwargs["ctx"] = ctx
    return function(*args, **kwargs)
