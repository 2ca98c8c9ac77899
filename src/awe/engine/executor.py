"""The one place a step runs: resolve its kind, call it, classify what happened."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
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
    registry: Registry,
    kind: str,
    ctx: StepContext,
    params: Any,
    *,
    each: bool = False,
    parallel: int = 1,
) -> Outcome:
    """Run one attempt of a step and return its outcome; never raises an ordinary Exception.

    ``BaseException``s that are not ``Exception`` (KeyboardInterrupt, SystemExit) pass through:
    they mean the worker itself must stop, and the caller releases the lease.
    """
    try:
        function = registry.get(kind)
        output = _each(function, ctx, params, parallel) if each else function(ctx, params)
        if ctx.deadline is not None and time.monotonic() > ctx.deadline:
            # A kind that cannot be interrupted (a Python call) still may not exceed its timeout.
            raise StepTimeout(ctx.timeout or 0)
        _check_json(output)
        return Outcome(output=output)
    except Exception as exc:  # noqa: BLE001 - the execution boundary classifies every error
        return Outcome(failure=classify(exc))


def _each(function: Any, ctx: StepContext, items: list[Any], parallel: int) -> list[Any]:
    """for_each: one call per item, ``parallel`` at a time; the results in item order.

    A failed item fails the step (the first failure in item order is raised once every started
    call has ended), and a retry runs every item again: at least once, like steps.
    """
    total = len(items)
    done = 0
    lock = threading.Lock()

    def one(index: int, item_params: Any) -> Any:
        nonlocal done
        ctx.check()
        result = function(replace(ctx, item_index=index), item_params)
        with lock:
            done += 1
            ctx.progress(done / total, f"{done} of {total} items")
        return result

    if parallel <= 1 or total <= 1:
        return [one(i, item) for i, item in enumerate(items)]
    with ThreadPoolExecutor(min(parallel, total), thread_name_prefix="awe-item") as pool:
        futures = [pool.submit(one, i, item) for i, item in enumerate(items)]
        wait(futures)
    return [future.result() for future in futures]


def _check_json(output: Any) -> None:
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            f"the step's output is not JSON-serialisable ({type(output).__name__}): {exc}"
        ) from None
