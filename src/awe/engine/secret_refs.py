"""``{{ secrets.NAME }}`` in step parameters: stored as references, resolved on the worker.

When a step becomes ready its templates render ``secrets.NAME`` as a reference,
``[[secret:NAME:TAG]]``, and that is what its stored input holds. The TAG is a keyed hash of the
step's id and the name (core/crypto.py), so a reference is only ever honoured in the step it was
made for: text that merely looks like one (from a run's inputs, or another step's output) stays
text. Right before the step runs, the worker replaces the references with the values, and from
then on masks every occurrence of those values as ``***`` in what the step logs, outputs or fails
with.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from awe.engine.errors import StepError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
REFERENCE = re.compile(r"\[\[secret:([A-Za-z_][A-Za-z0-9_]{0,99}):([0-9a-f]{16})\]\]")
MASK = "***"
Tagger = Callable[[str], str]


def tag_for(tagger: Tagger, step_id: str, name: str) -> str:
    """The tag of the reference to ``name`` made for step ``step_id``."""
    return tagger(f"secret-ref:{step_id}:{name}")


class SecretRef:
    """What ``secrets.NAME`` gives a template: a reference, shown as its text."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __str__(self) -> str:
        return self._text

    def awe_marker(self) -> str:
        """The reference's text (what a template with nothing else around it yields)."""
        return self._text


class SecretRefs:
    """The ``secrets`` of a step's templates: each name gives that step's reference."""

    __slots__ = ("_step_id", "_tagger")

    def __init__(self, tagger: Tagger, step_id: str) -> None:
        self._tagger = tagger
        self._step_id = step_id

    def __getitem__(self, name: str) -> SecretRef:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise KeyError(name)
        tag = tag_for(self._tagger, self._step_id, name)
        return SecretRef(f"[[secret:{name}:{tag}]]")


def referenced(value: Any) -> set[str]:
    """The secret names referenced anywhere in ``value`` (tags not checked)."""
    found: set[str] = set()

    def walk(item: Any) -> None:
        if isinstance(item, str):
            found.update(m.group(1) for m in REFERENCE.finditer(item))
        elif isinstance(item, dict):
            for v in item.values():
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)

    walk(value)
    return found


def resolve(
    value: Any, *, values: dict[str, str], step_id: str, tagger: Tagger, project: str | None
) -> Any:
    """``value`` with this step's references replaced by the secrets' values.

    A reference with another step's tag is left as it is (it was not made here); a reference
    of this step to a secret that is not set fails the step (validation: set it, then retry).
    """

    def replace(match: re.Match[str]) -> str:
        name, tag = match.group(1), match.group(2)
        if tag != tag_for(tagger, step_id, name):
            return match.group(0)
        if name not in values:
            where = f"project {project!r}" if project else "the default project"
            option = f" --project {project}" if project else ""
            raise StepError(
                f"secret {name!r} is not set in {where} (set it: awe secrets set {name}{option})",
                category="validation",
                retryable=False,
            )
        return values[name]

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return REFERENCE.sub(replace, item) if "[[secret:" in item else item
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(value)


class Masker:
    """Replaces every occurrence of some secret values with ``***``."""

    def __init__(self, secret_values: list[str]) -> None:
        # Longest first, so a value containing another is masked whole.
        self.values = sorted({v for v in secret_values if v}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        """``text`` with the values masked."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def value(self, item: Any) -> Any:
        """Every string inside a JSON-like value masked (keys too)."""
        if not self.values:
            return item
        if isinstance(item, str):
            return self.text(item)
        if isinstance(item, dict):
            return {self.text(str(k)): self.value(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [self.value(v) for v in item]
        return item
