"""Which templates are *plain*: cheap enough, whatever the data, to render inside the engine.

A plain template only reads a few values and passes them through a few filters whose cost grows
with the size of what they read: ``{{ inputs.name }}``, ``{{ steps.fetch.output.items |
map(attribute='id') | join(', ') }}``, ``{{ 'yes' if steps.check.status == 'succeeded' else
'no' }}``. The engine renders it in its own process only when what it may read is small too
(templating.py): some of these operations are quadratic at worst (a set of colliding numbers,
dividing huge integers), which on a few kilobytes costs nothing.

Anything else (statements, literals, calls, arithmetic that can repeat, filters that pad, format
or scan with regular expressions) may build values far larger than what it reads, or run for a
long time inside one C call, where no time budget can interrupt it. Those render in a separate
process with a memory limit that is killed when its time is up (engine/template_child.py).
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from awe.engine.template_sandbox import ENVIRONMENT

#: Filters whose cost and output grow with their input's size (and no faster), with the
#: keyword arguments they may take in a plain template. ``map`` only by ``attribute=``: by name
#: it could apply any filter.
_FILTERS: dict[str, frozenset[str]] = {
    name: frozenset(keywords)
    for name, keywords in {
        "abs": (),
        "attr": (),
        "capitalize": (),
        "count": (),
        "d": ("boolean",),
        "default": ("boolean",),
        "dictsort": ("case_sensitive", "by", "reverse"),
        "e": (),
        "escape": (),
        "first": (),
        "float": ("default",),
        "fromjson": (),
        "int": ("default", "base"),
        "items": (),
        "join": ("attribute",),
        "last": (),
        "length": (),
        "list": (),
        "lower": (),
        "map": ("attribute", "default"),
        "max": ("case_sensitive", "attribute"),
        "min": ("case_sensitive", "attribute"),
        "reject": (),
        "rejectattr": (),
        "replace": (),
        "reverse": (),
        "round": ("precision", "method"),
        "select": (),
        "selectattr": (),
        "shquote": (),
        "sort": ("reverse", "case_sensitive", "attribute"),
        "string": (),
        "sum": ("attribute", "start"),
        "title": (),
        "tojson": (),
        "trim": ("chars",),
        "truncate": ("length", "killwords", "end", "leeway"),
        "unique": ("case_sensitive", "attribute"),
        "upper": (),
        "urlencode": (),
        "wordcount": (),
    }.items()
}
#: Tests that answer from a value's type or by comparing it (``divisibleby``, ``even`` and
#: ``odd`` compute ``value % n``, which formats a string).
_TESTS = frozenset(
    {
        "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number",
        "string", "mapping", "iterable", "sequence", "callable", "sameas", "escaped", "lower",
        "upper", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt",
        "greaterthan", ">", "ge", ">=", "in",
    }
)  # fmt: skip
#: Positional arguments a plain ``map`` / ``tojson`` may take (others: any number).
_MAX_ARGS = {"map": 0, "tojson": 0}
#: Expressions that read, compare, choose or compute without repeating anything.
_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
)
#: How many values a plain template may read (each can at most be copied into what it gives),
#: and how many filters it may chain (some give a few times what they get: ``tojson`` escapes
#: quotes, ``list | string`` spells out each character).
MAX_READS = 4
MAX_FILTERS = 3
#: The largest constant a plain template may hold (a string's length, a number).
_MAX_CONSTANT = 1000


@functools.lru_cache(maxsize=4096)
def is_plain(source: str) -> bool:
    """True when ``source`` may render inside the engine (see the module's docstring)."""
    try:
        tree = ENVIRONMENT.parse(source)
    except TemplateSyntaxError:
        return True  # rendering it reports the syntax error; nothing runs
    reads = filters = 0
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _NODES):
            return False
        reads += isinstance(node, nodes.Name)
        filters += isinstance(node, nodes.Filter)
        if not _plain_node(node):
            return False
    return reads <= MAX_READS and filters <= MAX_FILTERS


def _plain_node(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Const):
        return _small(node.value)
    if isinstance(node, nodes.Filter | nodes.Test):
        return _plain_call(node)
    return True


def _small(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _MAX_CONSTANT
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int | float):
        return abs(value) <= _MAX_CONSTANT
    return False


def _plain_call(node: nodes.Filter | nodes.Test) -> bool:
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        return False
    if isinstance(node, nodes.Test):
        return node.name in _TESTS  # comparisons: as costly as reading what they compare
    keywords = _FILTERS.get(node.name)
    if keywords is None:
        return False
    if len(node.args) > _MAX_ARGS.get(node.name, len(node.args)):
        return False
    if not all(keyword.key in keywords for keyword in node.kwargs):
        return False
    # Arguments are small constants (a precision, a separator, an attribute name), except the
    # fallback of default, which is only returned: an argument read from data could make the
    # filter's cost grow with the product of two sizes (trim(chars), round(precision)).
    arguments = [*node.args, *(keyword.value for keyword in node.kwargs)]
    if node.name in ("d", "default"):
        return True
    if not all(isinstance(a, nodes.Const) for a in arguments):
        return False
    # select('odd'), selectattr('n', 'divisibleby', 3): the test they apply must be plain too.
    named = {"select": 0, "reject": 0, "selectattr": 1, "rejectattr": 1}.get(node.name)
    if named is not None and len(node.args) > named:
        test = node.args[named]
        return isinstance(test, nodes.Const) and test.value in _TESTS
    return True
