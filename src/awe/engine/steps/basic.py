"""Built-in kinds ``noop`` (returns its parameters) and ``sleep``, and the ``workflow`` marker."""

from __future__ import annotations

import time
from typing import Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.errors import StepTimeout
from awe.engine.registry import step_kind


@step_kind(keys=None)
def noop(ctx: StepContext, params: Any) -> Any:
    """Do nothing; the output is the parameters, so a noop can pass values along."""
    return params if params != {} else None


@step_kind(keys={"seconds"})
def sleep(ctx: StepContext, params: Any) -> dict[str, float]:
    """Sleep ``with: {seconds: N}``, waking early to honour cancellation and the timeout."""
    seconds = params.get("seconds") if isinstance(params, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValidationFailed(f"sleep needs with.seconds as a number >= 0, not {seconds!r}")
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ctx.check()
        remaining = ctx.remaining()
        if remaining is not None and remaining <= 0:
            raise StepTimeout(ctx.timeout or 0)
        time.sleep(min(left, 0.05))
    return {"slept": float(seconds)}


@step_kind(keys={"workflow", "version", "inputs"})
def workflow(ctx: StepContext, params: Any) -> Any:
    """``kind: workflow`` steps are run by the engine as child runs; no worker ever claims one."""
    raise ValidationFailed("a workflow step runs as a child run, not on a worker")
