"""Checking a workflow spec (a plain dict) before any row is written.

Workflow files (parsed with positions) build on this; the engine checks every spec it is given
again, whatever its source, so an API client cannot submit a DAG the engine cannot run.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from awe.engine.errors import SpecInvalid
from awe.engine.retry import DEFAULT_MAX_ATTEMPTS
from awe.engine.templating import has_template

#: The kind of a step that runs a stored workflow as a child run (see engine/children.py).
CHILD_KIND = "workflow"
# \Z, not $: $ also matches before a trailing newline, and "x\n" is no step id.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\Z")
STEP_ID_RE = re.compile(r"^[a-z_][a-z0-9_]*\Z")
QUEUE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
#: The most items of one for_each step that may run at once.
MAX_PARALLEL = 64
STEP_KEYS = frozenset(
    {
        "id",
        "kind",
        "needs",
        "with",
        "when",
        "for_each",
        "parallel",
        "retry",
        "timeout",
        "on_failure",
        "queue",
        "priority",
        "description",
        "name",
        # Set by the engine on every step of a run submitted as a dry run; not a file key.
        "dry_run",
    }
)


def as_dry_run(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with every step marked to preview its effects (DRY_RUN) instead of acting."""
    return {**spec, "dry_run": True, "steps": [{**s, "dry_run": True} for s in spec["steps"]]}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def find_cycle(needs: dict[str, list[str]]) -> list[str] | None:
    """One cycle in the needs graph as a list of ids ending where it started, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in needs.get(node, []):
            if dep not in needs:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in needs:
        if node not in state and (found := visit(node)):
            return found
    return None


def downstream_of(roots: set[str], needs: dict[str, list[str]]) -> set[str]:
    """``roots`` and every step that depends on any of them, directly or not."""
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for key, deps in needs.items():
            if key not in found and found.intersection(deps):
                found.add(key)
                changed = True
    return found


def normalise_spec(spec: Any, *, known_kind: Callable[[str], bool]) -> dict[str, Any]:
    """Return ``spec`` with defaults filled; raise SpecInvalid listing every problem."""
    problems: list[str] = []
    if not isinstance(spec, dict):
        raise SpecInvalid("a workflow spec must be a mapping with 'name' and 'steps'")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"name {name!r} must match [a-z0-9][a-z0-9-]*")
    raw_steps = spec.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("steps must be a non-empty list")
        raw_steps = []
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_steps):
        step = _normalise_step(raw, index, problems, known_kind)
        if step is None:
            continue
        if step["id"] in seen:
            problems.append(f"step id {step['id']!r} is used twice")
            continue
        seen.add(step["id"])
        steps.append(step)
    ids = {s["id"] for s in steps}
    for step in steps:
        for need in step["needs"]:
            if need not in ids:
                problems.append(
                    f"step {step['id']!r} needs {need!r}, which is not a step id"
                    + did_you_mean(need, ids)
                )
    cycle = find_cycle({s["id"]: s["needs"] for s in steps})
    if cycle:
        problems.append("the steps' needs form a cycle: " + " -> ".join(cycle))
    if not isinstance(spec.get("priority", 0), int):
        problems.append("priority must be an integer")
    queue = spec.get("queue")
    if queue is not None and (not isinstance(queue, str) or not QUEUE_RE.match(queue)):
        problems.append(f"queue {queue!r} must match [a-z0-9][a-z0-9_-]*")
    if problems:
        raise SpecInvalid("; ".join(problems))
    return {
        **spec,
        "queue": spec.get("queue") or "default",
        "priority": spec.get("priority", 0),
        "inputs": spec.get("inputs") or {},
        "outputs": spec.get("outputs") or {},
        "steps": steps,
    }


def _normalise_step(
    raw: Any, index: int, problems: list[str], known_kind: Callable[[str], bool]
) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        problems.append(f"steps[{index}] must be a mapping")
        return None
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID_RE.match(step_id):
        problems.append(f"steps[{index}].id {step_id!r} must be an identifier ([a-z_][a-z0-9_]*)")
        return None
    where = f"step {step_id!r}"
    for key in raw:
        if key not in STEP_KEYS:
            problems.append(f"{where}: unknown key {key!r}" + did_you_mean(key, STEP_KEYS))
    kind = raw.get("kind")
    if not isinstance(kind, str) or not known_kind(kind):
        problems.append(f"{where}: unknown kind {kind!r}")
    needs = raw.get("needs", [])
    if isinstance(needs, str):
        needs = [needs]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        problems.append(f"{where}: needs must be a list of step ids")
        needs = []
    retry = raw.get("retry") or {}
    _check_retry(where, retry, problems)
    timeout = raw.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        problems.append(f"{where}: timeout must be a number of seconds > 0, not {timeout!r}")
    on_failure = raw.get("on_failure", "fail")
    if on_failure not in ("fail", "continue"):
        problems.append(f"{where}: on_failure must be 'fail' or 'continue', not {on_failure!r}")
    priority = raw.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        problems.append(f"{where}: priority must be an integer")
    queue = raw.get("queue")
    if queue is not None and (not isinstance(queue, str) or not QUEUE_RE.match(queue)):
        problems.append(f"{where}: queue {queue!r} must match [a-z0-9][a-z0-9_-]*")
    if kind == CHILD_KIND:
        problems.extend(f"{where}: {message}" for _, message in workflow_step_problems(raw))
    problems.extend(f"{where}: {message}" for message in parallel_problems(raw))
    return {
        **raw,
        "needs": list(dict.fromkeys(needs)),
        "with": raw.get("with") if raw.get("with") is not None else {},
        "retry": retry if isinstance(retry, dict) else {},
        "on_failure": on_failure,
    }


def workflow_step_problems(step: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, what is wrong) for a workflow step's definition, checked before anything runs."""
    found: list[tuple[str, str]] = []
    params = step.get("with")
    if "for_each" in step:
        found.append(("for_each", "a workflow step cannot use for_each"))
    if not isinstance(params, dict) or not isinstance(params.get("workflow"), str):
        found.append(("with", "a workflow step needs with.workflow: a stored workflow's name"))
        return found
    for key in params:
        if key not in ("workflow", "version", "inputs"):
            found.append(
                ("with", f"with.{key} is not a workflow parameter (workflow, version, inputs)")
            )
    version = params.get("version")
    if (
        version is not None
        and not has_template(version)
        and (isinstance(version, bool) or not isinstance(version, int) or version < 1)
    ):
        found.append(("with", f"with.version must be a version number >= 1, not {version!r}"))
    inputs = params.get("inputs")
    if inputs is not None and not isinstance(inputs, dict) and not has_template(inputs):
        found.append(("with", "with.inputs must be a mapping of input name to value"))
    return found


def parallel_problems(step: dict[str, Any]) -> list[str]:
    """What is wrong with a step's ``parallel:`` (items of its for_each run at once)."""
    if "parallel" not in step:
        return []
    value = step["parallel"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL:
        return [f"parallel must be an integer from 1 to {MAX_PARALLEL}, not {value!r}"]
    if "for_each" not in step:
        return ["parallel only applies to a step with for_each"]
    return []


def retry_problems(retry: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, what is wrong) for each bad value of a ``retry:`` mapping."""
    found = []
    max_attempts = retry.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        found.append(("max_attempts", "retry.max_attempts must be an integer >= 1"))
    backoff = retry.get("backoff", [])
    if not isinstance(backoff, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in backoff
    ):
        found.append(("backoff", "retry.backoff must be a list of seconds >= 0"))
    jitter = retry.get("jitter", 0)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
        found.append(("jitter", "retry.jitter must be a fraction from 0 to 1"))
    return found


def _check_retry(where: str, retry: Any, problems: list[str]) -> None:
    if not isinstance(retry, dict):
        problems.append(f"{where}: retry must be a mapping")
        return
    problems.extend(f"{where}: {message}" for _, message in retry_problems(retry))
