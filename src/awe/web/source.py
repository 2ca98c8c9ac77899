"""Workflow YAML as pages show it: lightly highlighted, and with each problem beside its line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from awe.engine.files import Problem

_KEY = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][\w.-]*)(:)(?=\s|$)")
_QUOTED = re.compile(r"(\"[^\"]*\"|'[^']*')")


def _line(text: str) -> Markup:
    code, hash_, comment = (
        text.partition(" #") if not text.lstrip().startswith("#") else ("", "", text)
    )
    match = _KEY.match(code)
    head, rest = "", code
    if match:
        head = f'{escape(match[1])}<span class="k">{escape(match[2])}</span>:'
        rest = code[match.end() :]
    body = "".join(
        f'<span class="s">{escape(piece)}</span>' if i % 2 else str(escape(piece))
        for i, piece in enumerate(_QUOTED.split(rest))
    )
    tail = f'<span class="c">{escape(hash_ + comment)}</span>' if (hash_ or comment) else ""
    return Markup(head + body + tail)  # noqa: S704 (every part escaped above)


def highlight_yaml(source: str) -> list[Markup]:
    """The lines of ``source``, escaped, keys, strings and comments marked."""
    return [_line(line) for line in source.splitlines()]


@dataclass(frozen=True)
class Line:
    """A line of a checked source, with the problems found on it."""

    number: int
    html: Markup
    problems: tuple[Problem, ...]


def located(source: str, problems: Sequence[Problem]) -> list[Line]:
    """Each line with its problems (those without a line go on the first)."""
    lines = source.splitlines() or [""]
    by_line: dict[int, list[Problem]] = {}
    for problem in problems:
        number = min(max(problem.line, 1), len(lines))
        by_line.setdefault(number, []).append(problem)
    return [
        Line(i, _line(text), tuple(by_line.get(i, ()))) for i, text in enumerate(lines, start=1)
    ]
