"""Workflow files: YAML parsed with positions, every problem reported as ``file:line:col: …``.

All problems of a file are collected and reported together; a YAML syntax error stops parsing
and is reported alone (with a hint for the usual causes). A file that passes produces the same
spec dict the engine accepts. The checks themselves live in :mod:`awe.engine.file_checks`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from awe.core.errors import ValidationFailed
from awe.engine.models import WorkflowSpec
from awe.engine.spec import normalise_spec

MAX_BYTES = 1024 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 40
_DOCUMENT_START = re.compile(r"^---(\s|$)", re.M)
_ALIAS_START = re.compile(r"(?:^|:\s+|-\s+)([*&])")


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


def load_file(
    path: Path,
    *,
    known_kind: Callable[[str], bool],
    known_secrets: set[str] | None = None,
) -> dict[str, Any]:
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
    return load_text(text, source=str(path), known_kind=known_kind, known_secrets=known_secrets)


def load_text(
    text: str,
    *,
    source: str,
    known_kind: Callable[[str], bool],
    known_secrets: set[str] | None = None,
) -> dict[str, Any]:
    """Parse and check workflow YAML; raise WorkflowFileInvalid listing every problem.

    ``known_secrets``: the secret names of the project the workflow is for, when it is known;
    a template reading another one is then a problem.
    """
    from awe.engine.file_checks import Checker  # the checks import this module's helpers

    deep = _flow_nesting(text)
    if deep is not None:
        raise WorkflowFileInvalid(source, [deep])
    documents = [d for d in _parse(text, source) if d is not None]
    if len(documents) != 1:
        found = "no document" if not documents else f"{len(documents)} documents"
        line = _second_document_line(text, documents) if documents else 1
        raise WorkflowFileInvalid(
            source,
            [
                Problem(
                    line,
                    1,
                    f"expected one YAML document, found {found}"
                    + (" (a second one starts here)" if documents else ""),
                )
            ],
        )
    dropped = _unused_anchors(text)
    doc = documents[0]
    if not isinstance(doc, CommentedMap):
        raise WorkflowFileInvalid(
            source, [Problem(1, 1, "the top level must be a mapping (name:, steps:, …)")]
        )
    size_problem = _check_size(doc)
    if size_problem:
        raise WorkflowFileInvalid(source, [size_problem])
    checker = Checker(known_kind, known_secrets)
    spec = checker.check(doc)
    if checker.problems or dropped:
        raise WorkflowFileInvalid(source, [*dropped, *checker.problems])
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


def _parse(text: str, source: str) -> list[Any]:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in str(exc).lower() or "found duplicate key" in problem:
            problem = f"duplicate key: {problem}"
        hint = _alias_hint(text, exc, line)
        if hint is not None:
            line, col, problem = hint
        raise WorkflowFileInvalid(source, [Problem(line, col, f"YAML: {problem}")]) from None
    except YAMLError as exc:
        raise WorkflowFileInvalid(source, [Problem(1, 1, f"YAML: {exc}")]) from None
    except RecursionError:
        raise WorkflowFileInvalid(
            source, [Problem(1, 1, f"the document is nested deeper than {MAX_DEPTH} levels")]
        ) from None


def _alias_hint(text: str, exc: MarkedYAMLError, line: int) -> tuple[int, int, str] | None:
    """A plain value starting with * or &: YAML reads an alias or an anchor. Say so, and where."""
    said = f"{exc.context or ''} {exc.problem or ''}"
    if "alias" not in said and "anchor" not in said:
        return None
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    match = _ALIAS_START.search(lines[line - 1])
    col = match.start(1) + 1 if match else 1
    return (
        line,
        col,
        "a plain value starting with * or & is read as an alias or an anchor;"
        ' quote it, e.g. schedule: "*/5 * * * *"',
    )


def _unused_anchors(text: str) -> list[Problem]:
    """Anchors no alias uses: a plain value starting with & (``&nbsp; hello``) loses its first
    word to YAML, silently. Each one is reported where it is, with how to keep the value."""
    anchors: dict[str, Any] = {}
    used: set[str] = set()
    for event in YAML(typ="rt").parse(text):
        if type(event).__name__ == "AliasEvent":
            used.add(str(event.anchor))
        elif getattr(event, "anchor", None):
            anchors.setdefault(str(event.anchor), event.start_mark)
    return [
        Problem(
            mark.line + 1,
            mark.column + 1,
            f"YAML reads &{name} as an anchor (and drops it from the value), and nothing uses it:"
            f' quote the value if it starts with &, e.g. msg: "&{name} …"',
        )
        for name, mark in anchors.items()
        if name not in used
    ]


def _flow_nesting(text: str) -> Problem | None:
    """Refuse ``[[[[…`` or ``{{{{…`` nested past MAX_DEPTH before the parser recurses into it.

    Quoted strings and comments are skipped; a template's ``{{`` inside quotes is not nesting.
    """
    depth = 0
    quote = ""
    line, col = 1, 0
    previous = "\n"
    chars = iter(text)
    for char in chars:
        col += 1
        if char == "\n":
            line, col = line + 1, 0
            if quote == "":
                previous = char
                continue
        if quote:
            if char == "\\" and quote == '"':
                next(chars, "")
                col += 1
            elif char == quote:
                quote = ""
        elif char in "\"'" and previous in " \t\n[{,:":
            quote = char
        elif char == "#" and previous in " \t\n":
            for skipped in chars:
                if skipped == "\n":
                    line, col = line + 1, 0
                    break
            char = "\n"
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return Problem(line, col, f"nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
    return None


def _second_document_line(text: str, documents: list[Any]) -> int:
    """Where the second YAML document starts (1-based), as well as can be told."""
    second = documents[1] if len(documents) > 1 else None
    if second is not None and hasattr(second, "lc"):
        markers = [text.count("\n", 0, m.start()) + 1 for m in _DOCUMENT_START.finditer(text)]
        before = [n for n in markers if n <= second.lc.line + 1]
        return before[-1] if before else int(second.lc.line) + 1
    markers = [text.count("\n", 0, m.start()) + 1 for m in _DOCUMENT_START.finditer(text)]
    first_content = next(
        (
            i + 1
            for i, raw in enumerate(text.splitlines())
            if raw.strip() and not raw.startswith("#")
        ),
        1,
    )
    later = [n for n in markers if n > first_content]
    return later[0] if later else 1


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
