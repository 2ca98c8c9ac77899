"""The checks of a workflow file, each problem at its line and column, all reported together.

Every step is checked whatever is wrong elsewhere (a bad id, a duplicate, a cycle do not hide
another step's bad retry value); only what depends on a broken part (template references through
needs that form a cycle) is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from awe.core.errors import ValidationFailed
from awe.engine.cron import check_cron
from awe.engine.files import Problem
from awe.engine.inputs import INPUT_TYPES
from awe.engine.registry import default_registry
from awe.engine.spec import (
    CHILD_KIND,
    NAME_RE,
    QUEUE_RE,
    STEP_ID_RE,
    STEP_KEYS,
    did_you_mean,
    find_cycle,
    parallel_problems,
    retry_problems,
    workflow_step_problems,
)
from awe.engine.template_refs import TemplateSyntaxError, analyse
from awe.engine.template_sandbox import ENVIRONMENT
from awe.engine.templating import has_template

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
MAX_NAME = 100
UNQUOTED_TEMPLATE = (
    'looks like a template YAML read as a mapping: quote it, e.g. key: "{{ steps.a.output }}"'
)


def pos(container: Any, key: Any = None, *, value: bool = False) -> tuple[int, int]:
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


def plain(value: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (JSON-ready)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def unquoted_template(value: Any) -> bool:
    """True for what ``{{ x }}`` left unquoted becomes in YAML: {{x: null}: null}."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return False
    ((key, inner),) = value.items()
    return isinstance(key, Mapping) and inner is None


class Checker:
    """Collects every problem of one workflow document."""

    def __init__(
        self, known_kind: Callable[[str], bool], known_secrets: set[str] | None = None
    ) -> None:
        self.known_kind = known_kind
        self.known_secrets = known_secrets
        self.problems: list[Problem] = []
        self.all_ids: set[str] = set()

    def add(self, where: tuple[int, int], message: str) -> None:
        """Note a problem at ``where``."""
        self.problems.append(Problem(where[0], where[1], message))

    def missing(self, mapping: CommentedMap, key: str, what: str, expected: str) -> None:
        """Note that ``key`` is missing from ``mapping`` (at the mapping's position)."""
        self.add(pos(mapping), f"{what} has no {key!r} key: add {key}: {expected}")

    def unknown_keys(self, mapping: CommentedMap, allowed: frozenset[str], what: str) -> None:
        """Note each key of ``mapping`` that is not ``allowed``."""
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed)
                self.add(pos(mapping, key), f"unknown key {key!r} in {what}{hint}")

    def check(self, doc: CommentedMap) -> dict[str, Any]:
        """Check a whole document; return it as plain data (problems are in ``problems``)."""
        self.unknown_keys(doc, TOP_KEYS, "the workflow")
        self.check_name(doc)
        inputs = self.check_inputs(doc)
        self.check_int(doc, "priority", "priority")
        self.check_queue(doc, "queue")
        self.check_text(doc, "description", "description")
        if "schedule" in doc:
            self.check_schedule(doc)
        elif "timezone" in doc:
            self.add(pos(doc, "timezone"), "timezone only applies with a schedule: (add one)")
        steps = doc.get("steps")
        if "steps" not in doc:
            self.missing(doc, "steps", "the workflow", "a list of steps with id: and kind:")
        elif not isinstance(steps, CommentedSeq) or not steps:
            self.add(pos(doc, "steps", value=True), "steps must be a non-empty list of steps")
        if not isinstance(steps, CommentedSeq):
            return dict(plain(doc))
        ids = self.check_step_ids(steps)
        self.all_ids = set(ids)
        needs = {sid: self.check_needs(step, ids, sid) for sid, step in ids.items()}
        cycle = find_cycle(needs)
        if cycle:
            step = ids[cycle[0]]
            self.add(
                pos(step, "needs") if "needs" in step else pos(step),
                "the steps' needs form a cycle: " + " -> ".join(cycle),
            )
        upstream = _upstream(needs)
        for index, step in enumerate(steps):
            if not isinstance(step, CommentedMap):
                continue
            sid = step.get("id")
            if isinstance(sid, str) and ids.get(sid) is step:
                self.check_step(step, f"step {sid!r}", inputs, upstream[sid])
            else:  # a bad or repeated id: checked all the same, under its position
                self.check_step(step, f"steps[{index}]", inputs, set())
        outputs = doc.get("outputs")
        if outputs is not None:
            if not isinstance(outputs, CommentedMap):
                self.add(
                    pos(doc, "outputs", value=True), "outputs must be a mapping of name: template"
                )
            else:
                self.check_templates(
                    outputs, None, "outputs", inputs, set(ids), item=False, secrets=False
                )
        return dict(plain(doc))

    def check_name(self, doc: CommentedMap) -> None:
        """The workflow's name: present, and [a-z0-9-]."""
        if "name" not in doc:
            self.missing(doc, "name", "the workflow", "a name like my-workflow ([a-z0-9-])")
            return
        name = doc["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.add(
                pos(doc, "name", value=True), f"name must match [a-z0-9][a-z0-9-]* (got {name!r})"
            )
        elif len(name) > MAX_NAME:
            self.add(
                pos(doc, "name", value=True), f"name is {len(name)} characters; {MAX_NAME} at most"
            )

    def check_inputs(self, doc: CommentedMap) -> set[str]:
        """The declared inputs; returns their names."""
        inputs = doc.get("inputs")
        if inputs is None:
            return set()
        if not isinstance(inputs, CommentedMap):
            self.add(pos(doc, "inputs", value=True), "inputs must be a mapping of name: {type: …}")
            return set()
        for name, spec in inputs.items():
            if not isinstance(name, str) or not STEP_ID_RE.match(name):
                self.add(
                    pos(inputs, name),
                    f"input name {name!r} must be an identifier ([a-z_][a-z0-9_]*),"
                    " so that templates can read inputs.<name>",
                )
            if not isinstance(spec, CommentedMap):
                self.add(
                    pos(inputs, name, value=True),
                    f"input {name!r} must be a mapping like {{type: string}}",
                )
                continue
            self.unknown_keys(spec, INPUT_KEYS, f"input {name!r}")
            kind = spec.get("type", "string")
            if kind not in INPUT_TYPES:
                self.add(
                    pos(spec, "type", value=True),
                    f"input {name!r}: type {kind!r} is not one of {', '.join(INPUT_TYPES)}"
                    + did_you_mean(str(kind), INPUT_TYPES),
                )
            elif "default" in spec and not INPUT_TYPES[kind](spec["default"]):
                self.add(
                    pos(spec, "default", value=True),
                    f"input {name!r}: default {spec['default']!r} is not of type {kind}",
                )
            if "required" in spec and not isinstance(spec["required"], bool):
                self.add(
                    pos(spec, "required", value=True),
                    f"input {name!r}: required must be true or false",
                )
        return {str(k) for k in inputs}

    def check_schedule(self, doc: CommentedMap) -> None:
        """The cron expression, and its timezone (each checked on its own)."""
        try:
            check_cron(str(doc["schedule"]), "UTC")
        except ValidationFailed as exc:
            self.add(pos(doc, "schedule", value=True), exc.message)
        if "timezone" in doc:
            try:
                check_cron("@daily", str(doc["timezone"]))
            except ValidationFailed as exc:
                self.add(pos(doc, "timezone", value=True), exc.message)

    def check_queue(self, mapping: CommentedMap, what: str) -> None:
        """A queue name."""
        value = mapping.get("queue")
        if "queue" in mapping and (not isinstance(value, str) or not QUEUE_RE.match(value)):
            self.add(
                pos(mapping, "queue", value=True),
                f"{what} must be a name like 'default' or 'gpu-jobs' ([a-z0-9_-]), not {value!r}",
            )

    def check_text(self, mapping: CommentedMap, key: str, what: str) -> None:
        """A value that must be text."""
        if key in mapping and not isinstance(mapping[key], str):
            self.add(pos(mapping, key, value=True), f"{what} must be text")

    def check_int(self, mapping: CommentedMap, key: str, what: str) -> None:
        """A value that must be an integer."""
        value = mapping.get(key)
        if key in mapping and (isinstance(value, bool) or not isinstance(value, int)):
            self.add(pos(mapping, key, value=True), f"{what} must be an integer, not {value!r}")

    def check_step_ids(self, steps: CommentedSeq) -> dict[str, CommentedMap]:
        """Each step's id: present, an identifier, unique. Returns the good ones by id."""
        ids: dict[str, CommentedMap] = {}
        for index, step in enumerate(steps):
            if not isinstance(step, CommentedMap):
                self.add(pos(steps, index), "each step must be a mapping with id: and kind:")
                continue
            if "id" not in step:
                self.missing(step, "id", f"steps[{index}]", "an identifier like fetch_data")
                continue
            sid = step["id"]
            if not isinstance(sid, str) or not STEP_ID_RE.match(sid):
                self.add(
                    pos(step, "id", value=True),
                    f"step id {sid!r} must be an identifier ([a-z_][a-z0-9_]*)",
                )
                continue
            if sid in ids:
                self.add(pos(step, "id", value=True), f"duplicate step id {sid!r}")
                continue
            ids[sid] = step
        return ids

    def check_needs(self, step: CommentedMap, ids: dict[str, CommentedMap], sid: str) -> list[str]:
        """A step's needs: step ids. Returns the ones that exist."""
        raw = step.get("needs", [])
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            self.add(
                pos(step, "needs", value=True), f"step {sid!r}: needs must be a list of step ids"
            )
            return []
        found = []
        for index, need in enumerate(raw):
            if need not in ids:
                where = (
                    pos(raw, index)
                    if isinstance(raw, CommentedSeq)
                    else pos(step, "needs", value=True)
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
        self, step: CommentedMap, label: str, inputs: set[str], upstream: set[str]
    ) -> None:
        """Everything about one step but its id and needs."""
        self.unknown_keys(step, FILE_STEP_KEYS, label)
        kind = step.get("kind")
        if "kind" not in step:
            known = ", ".join(sorted(n for n in default_registry.names() if self.known_kind(n)))
            self.missing(step, "kind", label, f"one of {known}")
        elif not isinstance(kind, str) or not self.known_kind(kind):
            known_names = sorted(n for n in default_registry.names() if self.known_kind(n))
            hint = did_you_mean(str(kind), known_names) or f" (kinds: {', '.join(known_names)})"
            self.add(pos(step, "kind", value=True), f"{label}: unknown kind {kind!r}{hint}")
        self.check_int(step, "priority", f"{label}: priority")
        self.check_queue(step, f"{label}: queue")
        self.check_text(step, "description", f"{label}: description")
        for_each = step.get("for_each")
        if "for_each" in step and not (
            isinstance(for_each, list) or (isinstance(for_each, str) and has_template(for_each))
        ):
            hint = f": {UNQUOTED_TEMPLATE}" if unquoted_template(for_each) else ""
            self.add(
                pos(step, "for_each", value=True),
                f"{label}: for_each must be a list, or a template giving one"
                f" (got {type(for_each).__name__}){hint}",
            )
        timeout = step.get("timeout")
        if "timeout" in step and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            self.add(
                pos(step, "timeout", value=True),
                f"{label}: timeout must be seconds > 0, not {timeout!r}",
            )
        if step.get("on_failure", "fail") not in ("fail", "continue"):
            self.add(
                pos(step, "on_failure", value=True),
                f"{label}: on_failure must be fail or continue",
            )
        if "retry" in step:
            self.check_retry(step, label)
        for message in parallel_problems(step):
            self.add(pos(step, "parallel", value=True), f"{label}: {message}")
        self.check_with(step, label, kind)
        if kind == CHILD_KIND:
            for key, message in workflow_step_problems(step):
                self.add(pos(step, key) if key in step else pos(step), f"{label}: {message}")
        # `item` exists only in with: (rendered once per item); when: is rendered once per step.
        has_item = "for_each" in step
        for key in ("with", "when", "for_each"):
            if key in step:
                self.check_templates(
                    step,
                    key,
                    f"{label}: {key}",
                    inputs,
                    upstream,
                    item=has_item and key == "with",
                    secrets=key == "with",
                )

    def check_with(self, step: CommentedMap, label: str, kind: Any) -> None:
        """``with:`` is a mapping (or one template), and has only keys the kind accepts."""
        if "with" not in step or step["with"] is None:
            return
        params = step["with"]
        if isinstance(params, str) and has_template(params):
            return
        if not isinstance(params, CommentedMap) or unquoted_template(params):
            hint = f": {UNQUOTED_TEMPLATE}" if unquoted_template(params) else ""
            self.add(
                pos(step, "with", value=True),
                f"{label}: with must be a mapping of parameter: value"
                f" (got {type(params).__name__}){hint}",
            )
            return
        if not isinstance(kind, str) or not default_registry.knows(kind):
            return
        info = default_registry.info(kind)
        if info.check is not None:
            for key, problem in info.check(dict(params)):
                where = pos(params, key, value=True) if key in params else pos(step, "with")
                self.add(where, f"{label}: with.{key}: {problem}")
        accepted = info.keys
        if accepted is None:
            return
        for key in params:
            if key not in accepted:
                hint = (
                    did_you_mean(str(key), accepted)
                    or f" ({kind} takes: {', '.join(sorted(accepted))})"
                )
                self.add(
                    pos(params, key), f"{label}: with.{key} is not a parameter of {kind}{hint}"
                )

    def check_retry(self, step: CommentedMap, label: str) -> None:
        """A step's retry mapping."""
        retry = step["retry"]
        if not isinstance(retry, CommentedMap):
            self.add(pos(step, "retry", value=True), f"{label}: retry must be a mapping")
            return
        self.unknown_keys(retry, RETRY_KEYS, f"{label} retry")
        for key, message in retry_problems(retry):
            self.add(pos(retry, key, value=True), f"{label}: {message}")

    def check_templates(
        self,
        container: Any,
        key: Any,
        what: str,
        inputs: set[str],
        steps: set[str],
        *,
        item: bool,
        secrets: bool,
    ) -> None:
        """Every template inside ``container[key]`` (or ``container``): syntax, what it reads."""
        value = container if key is None else container[key]
        if unquoted_template(value):
            self.add(
                pos(container, key, value=True) if key is not None else pos(container),
                f"{what}: {UNQUOTED_TEMPLATE}",
            )
            return
        if isinstance(value, dict):
            for k in value:
                self.check_templates(
                    value, k, f"{what}.{k}", inputs, steps, item=item, secrets=secrets
                )
            return
        if isinstance(value, list):
            for i in range(len(value)):
                self.check_templates(
                    value, i, f"{what}[{i}]", inputs, steps, item=item, secrets=secrets
                )
            return
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            return
        where = pos(container, key, value=True)
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
            self.add(
                where,
                f"{what}: item is only defined in the with: of a step with for_each"
                " (when: is decided once for the whole step)",
            )
        for name in sorted(refs.unknown):
            self.add(
                where,
                f"{what}: unknown variable {name!r} (templates read inputs, steps, item, secrets)",
            )
        for name in sorted(refs.unknown_filters):
            self.add(
                where, f"{what}: unknown filter {name!r}" + did_you_mean(name, ENVIRONMENT.filters)
            )
        for name in sorted(refs.unknown_tests):
            self.add(
                where, f"{what}: unknown test {name!r}" + did_you_mean(name, ENVIRONMENT.tests)
            )
        self.check_secrets(where, what, refs.secrets, refs.misused_secrets, allowed=secrets)

    def check_secrets(
        self,
        where: tuple[int, int],
        what: str,
        names: set[str],
        misused: list[str],
        *,
        allowed: bool,
    ) -> None:
        """``secrets.NAME`` only in with:, only interpolated as it is, and set in the project."""
        if (names or misused) and not allowed:
            self.add(
                where,
                f"{what}: secrets may only be used in a step's with: (their values are only known"
                " to the worker running the step)",
            )
            return
        for name in sorted(set(misused)):
            shown = name if name == "secrets" else f"secrets.{name}"
            self.add(
                where,
                f"{what}: {shown} may only be interpolated as it is, like"
                " {{ secrets.NAME }} (not filtered, compared or combined: its value is only known"
                " to the worker)",
            )
        if self.known_secrets is None:
            return
        for name in sorted(names - self.known_secrets):
            self.add(
                where,
                f"{what}: secrets.{name} is not set in the project"
                f" (awe secrets set {name})" + did_you_mean(name, self.known_secrets),
            )


def _upstream(needs: dict[str, list[str]]) -> dict[str, set[str]]:
    """Each step's transitive needs (cycles included: their members see each other)."""
    memo: dict[str, set[str]] = {}

    def of(step: str) -> set[str]:
        if step not in memo:
            memo[step] = set()
            for dep in needs.get(step, []):
                memo[step] |= {dep} | of(dep)
        return memo[step]

    return {step: of(step) for step in needs}
