"""Workflows built in Python: the same spec, checked by the same rules, as a YAML file.

    wf = Workflow("greet")
    who = wf.input("who", "string", required=True)
    hello = wf.step("hello", "shell", with_={"command": f"echo hello {who}"})
    wf.step("shout", "noop", needs=[hello], with_={"text": hello.output.stdout.filter("upper")})
    spec = wf.build()                          # what load_file gives for the same YAML
    Path("greet.yaml").write_text(wf.to_yaml())

``wf.input(...)`` and ``step.output`` are template references: in an f-string they become
``{{ inputs.who }}`` and ``{{ steps.hello.output.stdout }}``. ``build()`` writes the workflow out
as YAML and reads it back through the file checker, so every rule of ``awe validate`` applies and
a problem is reported the same way (with positions in ``to_yaml()``'s text).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML

from awe.engine.files import load_text
from awe.engine.registry import Registry, default_registry


class Ref:
    """A template reference such as ``steps.a.output.text``; ``str()`` gives ``{{ … }}``."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(f"{self._path}.{name}")

    def __getitem__(self, key: str | int) -> Ref:
        return Ref(f"{self._path}[{key!r}]")

    def filter(self, expression: str) -> Ref:
        """This reference piped through a Jinja filter, e.g. ``ref.filter("tojson")``."""
        return Ref(f"{self._path} | {expression}")

    @property
    def expression(self) -> str:
        """The bare expression, without the braces."""
        return self._path

    def __str__(self) -> str:
        return "{{ " + self._path + " }}"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"Ref({self._path!r})"


@dataclass
class StepRef:
    """A step added to a Workflow; pass it in ``needs`` and read ``.output`` in templates."""

    id: str

    @property
    def output(self) -> Ref:
        """The step's output, as a template reference."""
        return Ref(f"steps.{self.id}.output")

    @property
    def status(self) -> Ref:
        """The step's final status, as a template reference."""
        return Ref(f"steps.{self.id}.status")


ITEM = Ref("item")
"""The current element inside a ``for_each`` step's templates."""


@dataclass
class Workflow:
    """A workflow under construction; ``build()`` checks it and returns the engine's spec."""

    name: str
    description: str | None = None
    queue: str | None = None
    priority: int | None = None
    schedule: str | None = None
    timezone: str | None = None
    _inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _steps: list[dict[str, Any]] = field(default_factory=list)
    _outputs: dict[str, Any] = field(default_factory=dict)

    def input(
        self,
        name: str,
        type: str = "string",
        *,
        required: bool | None = None,
        default: Any = None,
        description: str | None = None,
    ) -> Ref:
        """Declare an input; returns its template reference (``{{ inputs.name }}``)."""
        spec: dict[str, Any] = {"type": type}
        if required is not None:
            spec["required"] = required
        if default is not None:
            spec["default"] = default
        if description is not None:
            spec["description"] = description
        self._inputs[name] = spec
        return Ref(f"inputs.{name}")

    def step(
        self,
        id: str,
        kind: str,
        *,
        with_: Any = None,
        needs: list[StepRef | str] | None = None,
        when: Any = None,
        for_each: Any = None,
        retry: dict[str, Any] | None = None,
        timeout: float | None = None,
        on_failure: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        description: str | None = None,
    ) -> StepRef:
        """Add a step; returns a reference to it."""
        step: dict[str, Any] = {"id": id, "kind": kind}
        optional = {
            "description": description,
            "needs": [n.id if isinstance(n, StepRef) else n for n in needs] if needs else None,
            "when": when,
            "for_each": for_each,
            "retry": retry,
            "timeout": timeout,
            "on_failure": on_failure,
            "queue": queue,
            "priority": priority,
            "with": with_,
        }
        step.update({k: _plain(v) for k, v in optional.items() if v is not None})
        self._steps.append(step)
        return StepRef(id)

    def output(self, name: str, value: Any) -> None:
        """Declare a run output (a template, usually a step's output reference)."""
        self._outputs[name] = _plain(value)

    def to_dict(self) -> dict[str, Any]:
        """The workflow as the mapping a YAML file would hold, keys in the usual order."""
        doc: dict[str, Any] = {"name": self.name}
        for key in ("description", "queue", "priority", "schedule", "timezone"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        if self._inputs:
            doc["inputs"] = self._inputs
        doc["steps"] = self._steps
        if self._outputs:
            doc["outputs"] = self._outputs
        return doc

    def to_yaml(self) -> str:
        """The workflow as YAML text: save it and ``awe run`` it."""
        yaml = YAML(typ="rt")
        yaml.default_flow_style = False
        out = io.StringIO()
        yaml.dump(self.to_dict(), out)
        return out.getvalue()

    def build(self, *, registry: Registry | None = None) -> dict[str, Any]:
        """Check the workflow by the file rules and return the engine's spec for it."""
        known = (registry or default_registry).knows
        return load_text(self.to_yaml(), source=f"<workflow {self.name}>", known_kind=known)


def _plain(value: Any) -> Any:
    """References as template strings, recursively."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
