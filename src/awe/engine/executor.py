"""The one place a step runs: resolve its kind, call it, classify what happened."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.errors import Failure, StepTimeout, classify
from awe.engine.registry import Registry


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt: an output, or a failure."""

    output: Any = None
    failure: Failure | None = None


def execute(
    registry: Registry, kind: str, ctx: StepContext, params: Any, *, each: bool = False
) -> Outcome:
    """Run one attempt of a step and return its outcome; never raises an ordinary Exception.

    ``BaseException``s that are not ``Exception`` (KeyboardInterrupt, SystemExit) pass through:
    they mean the worker itself must stop, and the caller releases the lease.
    """
    try:
        function = registry.get(kind)
        if each:
            # for_each: one call per item, in order; the output is the list of results. A failed
            # item fails the step, and a retry runs every item again (at least once, like steps).
            output = []
            for index, item_params in enumerate(params):
                ctx.progress(index / max(1, len(params)), f"item {index + 1} of {len(params)}")
                output.append(function(ctx, item_params))
        else:
            output = function(ctx, params)
        if ctx.deadline is not None and time.monotonic() > ctx.deadline:
            # A kind that cannot be interrupted (a Python call) still may not exceed its timeout.
            raise StepTimeout(ctx.timeout or 0)
        _check_json(output)
        return Outcome(output=output)
    except Exception as exc:  # noqa: BLE001 - the execution boundary classifies every error
        return Outcome(failure=classify(exc))


def _check_json(output: Any) -> None:
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            f"the step's output is not JSON-serialisable ({type(output).__name__}): {exc}"
        ) from None
