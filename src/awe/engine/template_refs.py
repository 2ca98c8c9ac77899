"""What a template reads, found statically: ``inputs.x``, ``steps.y``, ``item``, ``secrets.z``.

Workflow validation uses this to refuse, before anything runs, a template that reads an input
that is not declared or a step that is not upstream, instead of failing at run time.

A secret's value is only known on the worker, so ``secrets.NAME`` may only be interpolated as it
is (``{{ secrets.NAME }}``, alone or inside a string); passing it to a filter, comparing it or
computing with it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from awe.engine.template_sandbox import ENVIRONMENT

ROOTS = ("inputs", "steps", "item", "secrets")


@dataclass
class References:
    """The names a template reads (``inputs``/``steps`` members, and any other free names)."""

    inputs: set[str] = field(default_factory=set)
    steps: set[str] = field(default_factory=set)
    item: bool = False
    unknown: set[str] = field(default_factory=set)
    #: Filters (``| name``) and tests (``is name``) the template environment does not have.
    unknown_filters: set[str] = field(default_factory=set)
    unknown_tests: set[str] = field(default_factory=set)
    #: ``secrets.NAME`` read as a plain interpolation.
    secrets: set[str] = field(default_factory=set)
    #: Secrets used otherwise (in a filter, a comparison, whole): what is wrong, for messages.
    misused_secrets: list[str] = field(default_factory=list)


def analyse(source: str) -> References:
    """Parse ``source`` and list what it reads; raises TemplateSyntaxError on bad syntax."""
    tree = ENVIRONMENT.parse(source)
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    allowed = set(ENVIRONMENT.globals) | assigned | {"loop", "true", "false", "none"}
    refs = References()
    consumed: set[int] = set()
    # Expressions printed as they are: `{{ x }}` (what a secret may be).
    printed = {id(child) for output in tree.find_all(nodes.Output) for child in output.nodes}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in ("inputs", "steps", "secrets"):
            continue
        member = _member(node)
        if member is None:
            continue
        consumed.add(id(base))
        if base.name == "secrets":
            refs.secrets.add(member)
            if id(node) not in printed:
                refs.misused_secrets.append(member)
            continue
        (refs.inputs if base.name == "inputs" else refs.steps).add(member)
    for name in tree.find_all(nodes.Name):
        if name.ctx != "load" or id(name) in consumed:
            continue
        if name.name == "item":
            refs.item = True
        elif name.name == "secrets":
            refs.misused_secrets.append("secrets")
        elif name.name in ("inputs", "steps"):
            continue  # used whole (e.g. `steps | dictsort`): nothing more to check statically
        elif name.name not in allowed:
            refs.unknown.add(name.name)
    for node in tree.find_all(nodes.Filter):
        assert isinstance(node, nodes.Filter)
        if node.name not in ENVIRONMENT.filters:
            refs.unknown_filters.add(node.name)
    for node in tree.find_all(nodes.Test):
        assert isinstance(node, nodes.Test)
        if node.name not in ENVIRONMENT.tests:
            refs.unknown_tests.add(node.name)
    return refs


def _member(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return str(node.attr)
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def spec_secrets(spec: dict[str, Any]) -> dict[str, str]:
    """Secret name → the first step whose ``with:`` reads it (templates that do not parse are
    left to the checks that report them)."""
    found: dict[str, str] = {}

    def walk(value: Any, step_id: str) -> None:
        if isinstance(value, str):
            if "secrets" in value and ("{{" in value or "{%" in value):
                try:
                    names = analyse(value).secrets
                except TemplateSyntaxError:
                    return
                for name in names:
                    found.setdefault(name, step_id)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, step_id)
        elif isinstance(value, list):
            for item in value:
                walk(item, step_id)

    for step in spec.get("steps") or []:
        walk(step.get("with"), str(step.get("id")))
    return found


__all__ = ["ROOTS", "References", "TemplateSyntaxError", "analyse", "spec_secrets"]
