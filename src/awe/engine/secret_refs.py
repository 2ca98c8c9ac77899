"""``{{ secrets.NAME }}`` in step parameters: stored as references, resolved on the worker.

When a step becomes ready its templates render ``secrets.NAME`` as a reference,
``[[secret:NAME:TAG]]``, and that is what its stored input holds. The TAG is a keyed hash of the
step's id, the name and a nonce drawn for that rendering and kept in the step's row
(core/crypto.py), so a reference is only ever honoured in the rendering it was made in: text that
merely looks like one (from a run's inputs, another step's output, or a reference copied from an
earlier rendering of this step) stays text. Right before the step runs, the worker replaces the
references with the values, and from then on masks every occurrence of those values as ``***`` in
what the step logs, outputs or fails with: the value itself, each of its lines, the forms it
takes inside JSON and URLs, and its beginning at the end of a text cut short.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

from awe.engine.errors import StepError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}\Z")  # \Z: no trailing newline
REFERENCE = re.compile(r"\[\[secret:([A-Za-z_][A-Za-z0-9_]{0,99}):([0-9a-f]{16})\]\]")
MASK = "***"
Tagger = Callable[[str], str]


def tag_for(tagger: Tagger, step_id: str, nonce: str, name: str) -> str:
    """The tag of the reference to ``name`` made for step ``step_id`` in the rendering ``nonce``."""
    return tagger(f"secret-ref:{step_id}:{nonce}:{name}")


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
    """The ``secrets`` of one rendering of a step's templates: each name gives its reference.

    ``nonce()`` is set once a reference was made: the step's row keeps it for the worker.
    A name gives a reference when it is a secret's name (never beginning with an underscore,
    which is where the state of this object and of RenderRefs lives): the same names give
    references here and in the template process.
    """

    __slots__ = ("_nonce", "_step_id", "_tagger")

    def __init__(self, tagger: Tagger, step_id: str) -> None:
        self._tagger = tagger
        self._step_id = step_id
        self._nonce: str | None = None

    def __getitem__(self, name: str) -> SecretRef:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise KeyError(name)
        if self._nonce is None:
            self._nonce = secrets.token_hex(8)
        tag = tag_for(self._tagger, self._step_id, self._nonce, name)
        return SecretRef(f"[[secret:{name}:{tag}]]")


def nonce_of(refs: SecretRefs) -> str | None:
    """The nonce the references of ``refs`` were made with (None if none was made)."""
    return refs._nonce  # a function, so templates cannot reach it


class RenderRefs:
    """The ``secrets`` of a template rendered in the template process (engine/template_child.py),
    which has no instance key: each name gives a reference tagged with ``render_tag`` under a
    key drawn for that one rendering. The engine turns the references whose tag is right for
    their name into the step's own, so renaming one (``replace(':A:', ':B:')``) gains nothing."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def __getitem__(self, name: str) -> SecretRef:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise KeyError(name)
        return SecretRef(f"[[secret:{name}:{render_tag(self._key, name)}]]")


def render_tag(key: str, name: str) -> str:
    """The tag of the reference to ``name`` in the rendering whose key is ``key``."""
    return hmac.new(key.encode(), name.encode(), "sha256").hexdigest()[:16]


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
    value: Any,
    *,
    values: dict[str, str],
    step_id: str,
    nonce: str | None,
    tagger: Tagger,
    project: str | None,
) -> Any:
    """``value`` with this step's references replaced by the secrets' values.

    A reference with another step's tag is left as it is (it was not made here); a reference
    of this step to a secret that is not set fails the step (validation: set it, then retry).
    """

    def replace(match: re.Match[str]) -> str:
        name, tag = match.group(1), match.group(2)
        if nonce is None or not hmac.compare_digest(tag, tag_for(tagger, step_id, nonce, name)):
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


#: Forms of a value shorter than this are not masked on their own (a line of a key, say "-----"):
#: masking them would blank ordinary text. The value itself is always masked.
MIN_FORM = 6
#: The shortest beginning of a secret masked where a text ends (shorter ones are too often
#: ordinary text: "2024", "-----").
MIN_PARTIAL = 8


def forms(value: str) -> set[str]:
    """The ways ``value`` shows up in what a step reports: as it is, each of its lines, escaped
    inside JSON, and percent-encoded in a URL or a form."""
    found = {value} | _encodings(value)
    found.update(line.strip() for line in value.splitlines())
    return {form for form in found if form == value or len(form) >= MIN_FORM}


def _encodings(value: str) -> set[str]:
    return {json.dumps(value)[1:-1], quote(value, safe=""), quote(value), quote_plus(value)}


def _cut_at_end(text: str, value: str) -> int:
    """The length of the longest beginning of ``value`` (MIN_PARTIAL characters or more) that
    ``text`` ends with; 0 when there is none."""
    start = max(len(text) - len(value) + 1, 0)
    while True:
        start = text.find(value[0], start)
        if start < 0 or len(text) - start < MIN_PARTIAL:
            return 0
        if value.startswith(text[start:]):
            return len(text) - start
        start += 1


class Masker:
    """Replaces every occurrence of some secret values (in any of their forms) with ``***``."""

    def __init__(self, secret_values: list[str]) -> None:
        every = {form for v in secret_values if v for form in forms(v)}
        # Longest first, so a value containing another is masked whole.
        self.values = sorted(every, key=len, reverse=True)
        # Where a text ends inside a value: the value or its encodings (not single lines).
        whole = {form for v in secret_values if v for form in {v} | _encodings(v)}
        self.beginnings = sorted(whole, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        """``text`` with the values masked, and a value's beginning where the text ends (text
        cut short, say at a length limit, may end inside a secret)."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        for value in self.beginnings:
            cut = _cut_at_end(text, value)
            if cut:
                text = text[:-cut] + MASK
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
