"""Workflow files: YAML parsed with positions, every problem reported as ``file:line:col: …``.

All problems of a file are collected and reported together; a YAML syntax error stops parsing
and is reported alone. A file that passes produces the same spec dict the engine accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from awe.core.errors import ValidationFailed
from awe.engine.inputs import INPUT_TYPES
from awe.engine.models import WorkflowSpec
from awe.engine.registry import default_registry
from awe.engine.scheduler import check_cron
from awe.engine.spec import (
    CHILD_KIND,
    NAME_RE,
    QUEUE_RE,
    STEP_ID_RE,
    STEP_KEYS,
    did_you_mean,
    find_cycle,
    normalise_spec,
    parallel_problems,
    retry_problems,
    workflow_step_problems,
)
from awe.engine.template_refs import TemplateSyntaxError, analyse
from awe.engine.templating import ENVIRONMENT, has_template

MAX_BYTES = 1024 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 40
TOP_KEYS = frozenset(
    {
        "name",
        "description",
        "inputs",
        "outputs",
        "queue",
        "priority",
        "schedule",
        "timezone",
        "steps",
    }
)
FILE_STEP_KEYS = STEP_KEYS - {"dry_run"}
INPUT_KEYS = frozenset({"type", "required", "default", "description"})
RETRY_KEYS = frozenset({"max_attempts", "backoff", "jitter"})


@dataclass(frozen=True)
class Problem:
    """One problem, at a 1-based line and column."""

    line: int
    col: int
    message: str


class WorkflowFileInvalid(ValidationFailed):
    """The workflow file is invalid."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line, p.col))
        lines = [f"{source}:{p.line}:{p.col}: {p.message}" for p in self.problems]
        super().__init__("\n".join(lines))


def load_file(path: Path, *, known_kind: Callable[[str], bool]) -> dict[str, Any]:
    """Read and check a workflow file; raise WorkflowFileInvalid listing every problem."""
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise WorkflowFileInvalid(
            str(path), [Problem(1, 1, f"file is larger than {MAX_BYTES} bytes")]
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkflowFileInvalid(
            str(path), [Problem(1, 1, f"not UTF-8 text ({exc.reason})")]
        ) from None
    return load_text(text, source=str(path), known_kind=known_kind)


def load_text(text: str, *, source: str, known_kind: Callable[[str], bool]) -> dict[str, Any]:
    """Parse and check workflow YAML; raise WorkflowFileInvalid listing every problem."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        documents = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in str(exc).lower() or "found duplicate key" in problem:
            problem = f"duplicate key: {problem}"
        line, col = where
        raise WorkflowFileInvalid(source, [Problem(line, col, f"YAML: {problem}")]) from None
    except YAMLError as exc:
        raise WorkflowFileInvalid(source, [Problem(1, 1, f"YAML: {exc}")]) from None
    documents = [d for d in documents if d is not None]
    if len(documents) != 1:
        found = "no document" if not documents else f"{len(documents)} documents"
        raise WorkflowFileInvalid(
            source, [Problem(1, 1, f"expected one YAML document, found {found}")]
        )
    doc = documents[0]
    if not isinstance(doc, CommentedMap):
        raise WorkflowFileInvalid(
            source, [Problem(1, 1, "the top level must be a mapping (name:, steps:, …)")]
        )
    size_problem = _check_size(doc)
    if size_problem:
        raise WorkflowFileInvalid(source, [size_problem])
    checker = _Checker(known_kind)
    spec = checker.check(doc)
    if checker.problems:
        raise WorkflowFileInvalid(source, checker.problems)
    try:
        model = WorkflowSpec.model_validate(spec)
    except PydanticValidationError as exc:
        # The checker above is meant to catch everything first, with a position; this is the net.
        raise WorkflowFileInvalid(
            source,
            [
                Problem(1, 1, f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
                for err in exc.errors()
            ],
        ) from None
    return normalise_spec(model.to_spec(), known_kind=known_kind)


def _check_size(doc: Any) -> Problem | None:
    """Refuse alias bombs and absurd nesting before walking the document."""
    budget = [MAX_NODES]

    def walk(node: Any, depth: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            return False
        children: Iterable[Any] = ()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        return all(walk(child, depth + 1) for child in children)

    if walk(doc, 0):
        return None
    return Problem(
        1, 1, f"document too large once aliases are expanded, or nested deeper than {MAX_DEPTH}"
    )


def _pos(container: Any, key: Any = None, *, value: bool = False) -> tuple[int, int]:
    """1-based position of ``container`` itself, of a key, or of the value at a key/index."""
    try:
        if key is None:
            return container.lc.line + 1, container.lc.col + 1
        if isinstance(container, CommentedSeq):
            line, col = container.lc.item(key)
        elif value:
            line, col = container.lc.value(key)
        else:
            line, col = container.lc.key(key)
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError):
        return 1, 1


class _Checker:
    def __init__(self, known_kind: Callable[[str], bool]) -> None:
        self.known_kind = known_kind
        self.problems: list[Problem] = []
        self.all_ids: set[str] = set()

    def add(self, where: tuple[int, int], message: str) -> None:
        self.problems.append(Problem(where[0], where[1], message))

    def unknown_keys(self, mapping: CommentedMap, allowed: frozenset[str], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed)
                self.add(_pos(mapping, key), f"unknown key {key!r} in {what}{hint}")

    def check(self, doc: CommentedMap) -> dict[str, Any]:
        self.unknown_keys(doc, TOP_KEYS, "the workflow")
        name = doc.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            where = _pos(doc, "name", value=True) if "name" in doc else (1, 1)
            self.add(where, f"name must match [a-z0-9][a-z0-9-]* (got {name!r})")
        inputs = self.check_inputs(doc)
        self.check_int(doc, "priority", "priority")
        self.check_queue(doc, "queue")
        self.check_text(doc, "description", "description")
        if "schedule" in doc:
            self.check_schedule(doc)
        steps = doc.get("steps")
        if not isinstance(steps, CommentedSeq) or not steps:
            self.add(
                _pos(doc, "steps", value=True) if "steps" in doc else (1, 1),
                "steps must be a non-empty list of steps",
            )
            return dict(_plain(doc))
        ids = self.check_step_ids(steps)
        self.all_ids = set(ids)
        needs = {sid: self.check_needs(step, ids, sid) for sid, step in ids.items()}
        cycle = find_cycle(needs)
        if cycle:
            step = ids[cycle[0]]
            self.add(
                _pos(step, "needs") if "needs" in step else _pos(step),
                "the steps' needs form a cycle: " + " -> ".join(cycle),
            )
        else:
            upstream = _upstream(needs)
            for sid, step in ids.items():
                self.check_step(step, sid, inputs, upstream[sid])
        outputs = doc.get("outputs")
        if outputs is not None:
            if not isinstance(outputs, CommentedMap):
                self.add(
                    _pos(doc, "outputs", value=True), "outputs must be a mapping of name: template"
                )
            else:
                self.check_templates(outputs, None, "outputs", inputs, set(ids), item=False)
        return dict(_plain(doc))

    def check_inputs(self, doc: CommentedMap) -> set[str]:
        inputs = doc.get("inputs")
        if inputs is None:
            return set()
        if not isinstance(inputs, CommentedMap):
            self.add(_pos(doc, "inputs", value=True), "inputs must be a mapping of name: {type: …}")
            return set()
        for name, spec in inputs.items():
            if not isinstance(name, str) or not STEP_ID_RE.match(name):
                self.add(
                    _pos(inputs, name),
                    f"input name {name!r} must be an identifier ([a-z_][a-z0-9_]*),"
                    " so that templates can read inputs.<name>",
                )
            if not isinstance(spec, CommentedMap):
                self.add(
                    _pos(inputs, name, value=True),
                    f"input {name!r} must be a mapping like {{type: string}}",
                )
                continue
            self.unknown_keys(spec, INPUT_KEYS, f"input {name!r}")
            kind = spec.get("type", "string")
            if kind not in INPUT_TYPES:
                self.add(
                    _pos(spec, "type", value=True),
                    f"input {name!r}: type {kind!r} is not one of {', '.join(INPUT_TYPES)}"
                    + did_you_mean(str(kind), INPUT_TYPES),
                )
            elif "default" in spec and not INPUT_TYPES[kind](spec["default"]):
                self.add(
                    _pos(spec, "default", value=True),
                    f"input {name!r}: default {spec['default']!r} is not of type {kind}",
                )
            if "required" in spec and not isinstance(spec["required"], bool):
                self.add(
                    _pos(spec, "required", value=True),
                    f"input {name!r}: required must be true or false",
                )
        return {str(k) for k in inputs}

    def check_schedule(self, doc: CommentedMap) -> None:
        try:
            check_cron(str(doc["schedule"]), str(doc.get("timezone", "UTC")))
        except ValidationFailed as exc:
            key = "timezone" if "timezone" in exc.message and "timezone" in doc else "schedule"
            self.add(_pos(doc, key, value=True), exc.message)

    def check_queue(self, mapping: CommentedMap, what: str) -> None:
        value = mapping.get("queue")
        if "queue" in mapping and (not isinstance(value, str) or not QUEUE_RE.match(value)):
            self.add(
                _pos(mapping, "queue", value=True),
                f"{what} must be a name like 'default' or 'gpu-jobs' ([a-z0-9_-]), not {value!r}",
            )

    def check_text(self, mapping: CommentedMap, key: str, what: str) -> None:
        if key in mapping and not isinstance(mapping[key], str):
            self.add(_pos(mapping, key, value=True), f"{what} must be text")

    def check_int(self, mapping: CommentedMap, key: str, what: str) -> None:
        value = mapping.get(key)
        if key in mapping and (isinstance(value, bool) or not isinstance(value, int)):
            self.add(_pos(mapping, key, value=True), f"{what} must be an integer, not {value!r}")

    def check_step_ids(self, steps: CommentedSeq) -> dict[str, CommentedMap]:
        ids: dict[str, CommentedMap] = {}
        for index, step in enumerate(steps):
            if not isinstance(step, CommentedMap):
                self.add(_pos(steps, index), "each step must be a mapping with id: and kind:")
                continue
            sid = step.get("id")
            if not isinstance(sid, str) or not STEP_ID_RE.match(sid):
                where = _pos(step, "id", value=True) if "id" in step else _pos(step)
                self.add(where, f"step id {sid!r} must be an identifier ([a-z_][a-z0-9_]*)")
                continue
            if sid in ids:
                self.add(_pos(step, "id", value=True), f"duplicate step id {sid!r}")
                continue
            ids[sid] = step
        return ids

    def check_needs(self, step: CommentedMap, ids: dict[str, CommentedMap], sid: str) -> list[str]:
        raw = step.get("needs", [])
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            self.add(
                _pos(step, "needs", value=True), f"step {sid!r}: needs must be a list of step ids"
            )
            return []
        found = []
        for index, need in enumerate(raw):
            if need not in ids:
                where = (
                    _pos(raw, index)
                    if isinstance(raw, CommentedSeq)
                    else _pos(step, "needs", value=True)
                )
                self.add(
                    where,
                    f"step {sid!r} needs {need!r}, which is not a step id"
                    + did_you_mean(str(need), ids),
                )
            else:
                found.append(str(need))
        return found

    def check_step(
        self, step: CommentedMap, sid: str, inputs: set[str], upstream: set[str]
    ) -> None:
        self.unknown_keys(step, FILE_STEP_KEYS, f"step {sid!r}")
        kind = step.get("kind")
        if not isinstance(kind, str) or not self.known_kind(kind):
            where = _pos(step, "kind", value=True) if "kind" in step else _pos(step)
            known = sorted(n for n in default_registry.names() if self.known_kind(n))
            hint = did_you_mean(str(kind), known) or f" (kinds: {', '.join(known)})"
            self.add(where, f"step {sid!r}: unknown kind {kind!r}{hint}")
        self.check_int(step, "priority", f"step {sid!r}: priority")
        self.check_queue(step, f"step {sid!r}: queue")
        self.check_text(step, "description", f"step {sid!r}: description")
        for_each = step.get("for_each")
        if "for_each" in step and not isinstance(for_each, list) and not has_template(for_each):
            self.add(
                _pos(step, "for_each", value=True),
                f"step {sid!r}: for_each must be a list or a template giving one, not {for_each!r}",
            )
        timeout = step.get("timeout")
        if "timeout" in step and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            self.add(
                _pos(step, "timeout", value=True),
                f"step {sid!r}: timeout must be seconds > 0, not {timeout!r}",
            )
        if step.get("on_failure", "fail") not in ("fail", "continue"):
            self.add(
                _pos(step, "on_failure", value=True),
                f"step {sid!r}: on_failure must be fail or continue",
            )
        if "retry" in step:
            self.check_retry(step, sid)
        for message in parallel_problems(step):
            self.add(_pos(step, "parallel", value=True), f"step {sid!r}: {message}")
        if kind == CHILD_KIND:
            for key, message in workflow_step_problems(step):
                self.add(_pos(step, key) if key in step else _pos(step), f"step {sid!r}: {message}")
        has_item = "for_each" in step
        for key in ("with", "when", "for_each"):
            if key in step:
                self.check_templates(
                    step,
                    key,
                    f"step {sid!r}: {key}",
                    inputs,
                    upstream,
                    item=has_item and key != "for_each",
                )

    def check_retry(self, step: CommentedMap, sid: str) -> None:
        retry = step["retry"]
        if not isinstance(retry, CommentedMap):
            self.add(_pos(step, "retry", value=True), f"step {sid!r}: retry must be a mapping")
            return
        self.unknown_keys(retry, RETRY_KEYS, f"step {sid!r} retry")
        for key, message in retry_problems(retry):
            self.add(_pos(retry, key, value=True), f"step {sid!r}: {message}")

    def check_templates(
        self, container: Any, key: Any, what: str, inputs: set[str], steps: set[str], *, item: bool
    ) -> None:
        value = container if key is None else container[key]
        if isinstance(value, dict):
            for k in value:
                self.check_templates(value, k, f"{what}.{k}", inputs, steps, item=item)
            return
        if isinstance(value, list):
            for i in range(len(value)):
                self.check_templates(value, i, f"{what}[{i}]", inputs, steps, item=item)
            return
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return
        where = _pos(container, key, value=True)
        try:
            refs = analyse(value)
        except TemplateSyntaxError as exc:
            self.add(where, f"{what}: template syntax error: {exc.message}")
            return
        for name in sorted(refs.inputs - inputs):
            self.add(
                where, f"{what}: inputs.{name} is not a declared input" + did_you_mean(name, inputs)
            )
        for name in sorted(refs.steps - steps):
            reason = (
                "is not upstream (add it to needs)" if name in self.all_ids else "is not a step"
            )
            self.add(where, f"{what}: steps.{name} {reason}" + did_you_mean(name, steps))
        if refs.item and not item:
            self.add(where, f"{what}: item is only defined in a step with for_each")
        for name in sorted(refs.unknown):
            self.add(
                where, f"{what}: unknown variable {name!r} (templates read inputs, steps and item)"
            )
        for name in sorted(refs.unknown_filters):
            self.add(
                where, f"{what}: unknown filter {name!r}" + did_you_mean(name, ENVIRONMENT.filters)
            )
        for name in sorted(refs.unknown_tests):
            self.add(
                where, f"{what}: unknown test {name!r}" + did_you_mean(name, ENVIRONMENT.tests)
            )


def _upstream(needs: dict[str, list[str]]) -> dict[str, set[str]]:
    """Each step's transitive needs."""
    memo: dict[str, set[str]] = {}

    def of(step: str) -> set[str]:
        if step not in memo:
            memo[step] = set()
            for dep in needs.get(step, []):
                memo[step] |= {dep} | of(dep)
        return memo[step]

    return {step: of(step) for step in needs}


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (JSON-ready)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
