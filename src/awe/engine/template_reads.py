"""What a template reads of its context, so that only that is measured and handed over.

``{{ steps.fetch.output.title }}`` reads one value of one step; a run's other outputs, however
big, are neither measured nor sent to the template process. A name read any other way (bare, in
a loop, through a filter, by a computed key) is read whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jinja2 import nodes

from awe.engine.template_sandbox import ENVIRONMENT

#: Keys deeper than this are not followed (the value at this depth is read whole).
DEPTH = 3
#: ``x.items`` means the dict's method, not its key: a dotted name of these reads ``x`` whole.
_METHODS = frozenset(dir(dict)) | frozenset(dir(list)) | frozenset(dir(str))
Path = tuple[str | int, ...]
#: Per name of the context, the paths read under it (``()``: the whole value).
Reads = dict[str, frozenset[Path]]


@lru_cache(maxsize=4096)
def reads(source: str) -> tuple[tuple[str, frozenset[Path]], ...] | None:
    """The paths ``source`` reads under each name, sorted by name (so equal reads compare
    equal); None when it cannot be parsed (rendering reports that)."""
    try:
        tree = ENVIRONMENT.parse(source)
    except Exception:  # noqa: BLE001 (any parse failure is the renderer's to report)
        return None
    found: dict[str, set[Path]] = defaultdict(set)
    _visit(tree, found)
    return tuple(sorted((name, frozenset(paths)) for name, paths in found.items()))


def _visit(node: nodes.Node, found: dict[str, set[Path]]) -> None:
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        keys: list[str | int] = []
        inner: nodes.Node = node
        while isinstance(inner, nodes.Getattr | nodes.Getitem):
            key = _key(inner)
            if key is None:  # a computed key, or a method: only what is below is a path
                keys = []
                if isinstance(inner, nodes.Getitem):
                    _visit(inner.arg, found)
            else:
                keys.append(key)
            inner = inner.node
        if isinstance(inner, nodes.Name) and inner.ctx == "load":
            found[inner.name].add(tuple(reversed(keys))[:DEPTH])
        else:
            _visit(inner, found)
        return
    if isinstance(node, nodes.Name):
        if node.ctx == "load":
            found[node.name].add(())
        return
    for child in node.iter_child_nodes():
        _visit(child, found)


def _key(node: nodes.Getattr | nodes.Getitem) -> str | int | None:
    if isinstance(node, nodes.Getattr):
        return None if node.attr in _METHODS else node.attr
    arg = node.arg
    if isinstance(arg, nodes.Const) and isinstance(arg.value, str | int):
        if isinstance(arg.value, str) and arg.value in _METHODS:
            return None  # x['items'] is the method when x has no such key: read x whole
        return arg.value
    return None


class Pruned:
    """What the paths read reached, as it is handed over: ``shape`` names every part (the path
    of each narrowed dict and of each value kept whole, in order) and ``leaves`` holds the
    values kept whole; the same shape and the same leaf objects are the same data."""

    def __init__(self) -> None:
        self.shape: list[tuple[str, Path]] = []
        self.leaves: list[Any] = []

    def take(self, value: Any, paths: Iterable[Path], at: Path = ()) -> Any:
        """``value`` with only what ``paths`` reach (dicts narrowed to the keys read; what a
        path ends on is kept whole)."""
        paths = set(paths)
        if () in paths or not isinstance(value, dict):
            self.shape.append(("value", at))
            self.leaves.append(value)
            return value
        self.shape.append(("dict", at))
        below: dict[str | int, set[Path]] = defaultdict(set)
        for path in paths:
            below[path[0]].add(path[1:])
        narrowed = {}
        for key in sorted(below, key=str):
            if key in value:
                narrowed[key] = self.take(value[key], below[key], (*at, key))
        return narrowed
