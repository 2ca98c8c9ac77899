"""The template sandbox: Jinja2's immutable sandbox, strict about missing variables, with the
operations that can build huge values checked first.

A string that is exactly one ``{{ expression }}`` yields the expression's native value (a list
stays a list, an integer an integer); any other string with templates renders to a string.
Besides Jinja's filters there are ``fromjson`` (read JSON a script printed) and ``shquote``
(quote a value for a POSIX shell).

Repetitions (``'a' * n``), powers, padding widths, replacements and joins that would build huge
values are refused before they run, and a line tracer stops Python-level loops once their time is
up. What a single C call does cannot be interrupted here: templates that are not plain
(engine/template_plain.py) render in a separate process (engine/template_child.py), which is
also why this module imports nothing of the engine's storage.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, UndefinedError
from jinja2 import filters as jinja_filters
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
#: The largest string or list a template may build by repetition, padding or replacement.
MAX_SIZE = 1_000_000
#: Powers whose result would have more bits than this are refused.
MAX_POWER_BITS = 100_000
#: The longest text (or JSON) one template may give: passing big data between steps is fine,
#: building it out of nothing is not.
MAX_RENDERED = 16 * 1024 * 1024
# Widths and precisions in %-formats and format specs ("%999999999d", "%.9999999d",
# "{:>999999999}").
_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?|\{[^{}]*:[^{}]*?(\d{7,})")
# A replacement field inside a format spec ("{0:>{1}}"): its width would come from a value.
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")
# Methods of str that pad or repeat to a size given as an argument.
_PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


class TemplateTooCostly(Exception):
    """A template would take too much memory or time."""


class NotStorable(Exception):
    """A template gives a value that cannot be stored (not JSON: a range, infinity, an object)."""


def _check_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise TemplateTooCostly(f"{what} would make {size:,} items (at most {MAX_SIZE:,})")


def _check_format(template: str) -> None:
    for match in _WIDTHS.finditer(template):
        for width in match.groups():
            if width is not None and (width == "*" or int(width) > MAX_SIZE):
                raise TemplateTooCostly(f"a format width of {width} is too large")
    if _NESTED_FIELD.search(template):
        raise TemplateTooCostly("a format width or precision may not come from a value")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with the operators and calls that can build huge values checked first."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse repetitions, powers and formats whose result would be huge."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                    _check_size(len(seq) * max(times, 0), "a repetition")
            return left * right
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and left.bit_length() * right > MAX_POWER_BITS
            ):
                raise TemplateTooCostly(f"{left} ** {right} is too large to compute")
            return left**right
        if isinstance(left, str):
            _check_format(left)
        return left % right

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's str.format, with widths checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = str(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(template)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Refuse str methods that would pad or replace to a huge size."""
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in _PADDING_METHODS:
                for value in args:
                    if isinstance(value, int):
                        _check_size(value * (8 if name == "expandtabs" else 1), f"str.{name}")
            elif name == "replace" and len(args) >= 2:
                _check_size(_replaced_size(owner, str(args[0]), str(args[1])), "str.replace")
        return super().call(__context, __obj, *args, **kwargs)


def _replaced_size(text: str, old: str, new: str) -> int:
    count = len(text) + 1 if old == "" else text.count(old)
    return len(text) + count * len(new)


def _bounded_filter(name: str, check: Callable[..., None]) -> Callable[..., Any]:
    original = jinja_filters.FILTERS[name]

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return original(*args, **kwargs)

    return bounded


def _width_check(what: str) -> Callable[..., None]:
    def check(value: Any, width: Any = 80, *rest: Any, **options: Any) -> None:
        if isinstance(width, int):
            _check_size(width + len(str(value)), what)

    return check


def _replace_check(_context: Any, text: Any, old: Any, new: Any, *rest: Any) -> None:
    _check_size(_replaced_size(str(text), str(old), str(new)), "the replace filter")


def _format_check(text: Any, *args: Any, **kwargs: Any) -> None:
    _check_format(str(text))


def _join_check(_context: Any, value: Any, separator: Any = "", *rest: Any, **options: Any) -> None:
    if hasattr(value, "__len__"):
        _check_size(len(str(separator)) * max(len(value) - 1, 0), "the join filter")


def _sum_check(_environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if not isinstance(start, int | float) or isinstance(start, bool):
        raise TemplateTooCostly(
            "sum adds numbers; join lists or strings with the join filter instead"
        )


def _indent_check(text: Any, width: Any = 4, *rest: Any, **options: Any) -> None:
    if isinstance(width, int):
        _check_size(width * (str(text).count("\n") + 1) + len(str(text)), "the indent filter")


def shquote(value: Any) -> str:
    """``value`` quoted for a POSIX shell: one word, whatever it holds."""
    return shlex.quote(value if isinstance(value, str) else json.dumps(value))


ENVIRONMENT = _BoundedSandbox(undefined=StrictUndefined, autoescape=False)
# The reverse of Jinja's own tojson: read what a script printed as JSON.
ENVIRONMENT.filters["fromjson"] = json.loads
ENVIRONMENT.filters["shquote"] = shquote
ENVIRONMENT.filters["center"] = _bounded_filter("center", _width_check("the center filter"))
ENVIRONMENT.filters["indent"] = _bounded_filter("indent", _indent_check)
ENVIRONMENT.filters["replace"] = _bounded_filter("replace", _replace_check)
ENVIRONMENT.filters["format"] = _bounded_filter("format", _format_check)
ENVIRONMENT.filters["sum"] = _bounded_filter("sum", _sum_check)
ENVIRONMENT.filters["join"] = _bounded_filter("join", _join_check)


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Template:
    return ENVIRONMENT.from_string(source)


@functools.lru_cache(maxsize=1024)
def _expression(source: str) -> Callable[..., Any]:
    return ENVIRONMENT.compile_expression(source, undefined_to_none=False)


class TemplateFailed(Exception):
    """A template could not be rendered; the message says why and shows the template (not
    where it is: the caller adds that)."""


def render_here(
    source: str, context: dict[str, Any], seconds: float | None, out_of_time: str = ""
) -> Any:
    """Render the template ``source`` in this thread, stopping Python-level work after
    ``seconds`` (the failure then says ``out_of_time``; None: no tracer, for plain templates,
    whose work is bounded by what they read); TemplateFailed whatever goes wrong."""
    try:
        with _Tracer(seconds, out_of_time) if seconds is not None else nullcontext():
            single = _SINGLE.match(source)
            if single and "{{" not in single["expr"] and "}}" not in single["expr"]:
                result = _expression(single["expr"])(**context)
                if isinstance(result, Undefined):
                    result._fail_with_undefined_error()
                return _storable(_native(result))
            rendered = _compiled(source).render(**context)
        if len(rendered) > MAX_RENDERED:
            raise TemplateTooCostly(f"it renders {len(rendered):,} characters")
        return rendered
    except UndefinedError as exc:
        raise TemplateFailed(f"{exc.message} in template {shown(source)}") from None
    except TemplateTooCostly as exc:
        raise TemplateFailed(too_costly(source, str(exc))) from None
    except NotStorable as exc:
        raise TemplateFailed(f"template {shown(source)} cannot be a parameter: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailed(f"template error: {exc} in {shown(source)}") from None
    except MemoryError:
        raise TemplateFailed(too_costly(source, OUT_OF_MEMORY)) from None
    except Exception as exc:  # noqa: BLE001 - whatever a template raises belongs to its step
        reason = str(exc) or type(exc).__name__
        raise TemplateFailed(
            f"template {shown(source)} raised {type(exc).__name__}: {reason[:500]}"
        ) from None


#: Why a template that ran out of memory failed.
OUT_OF_MEMORY = "it needs more memory than a template may use"


def too_costly(source: str, reason: str) -> str:
    """The failure of a template that would take too much time or memory."""
    return f"template {shown(source)} is too costly: {reason}"


def _native(result: Any) -> Any:
    """What a single-expression template gives, as the step receives it (references to
    secrets as their text, anywhere inside)."""
    to_marker = getattr(result, "awe_marker", None)
    if callable(to_marker):
        return to_marker()
    if isinstance(result, dict):
        return {k: _native(v) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return [_native(v) for v in result]
    return result


def _storable(result: Any) -> Any:
    """``result`` if it can be stored as JSON (a step's parameters are); NotStorable if not."""
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise NotStorable(
            f"it gives {type(result).__name__}, which is not a JSON value ({exc})"
        ) from None
    if len(text) > MAX_RENDERED:
        raise TemplateTooCostly(f"it gives {len(text):,} characters of JSON")
    return result


def shown(template: str) -> str:
    """``template`` as failures show it (cut at 300 characters)."""
    return repr(template if len(template) <= 300 else template[:300] + "…")


class _Tracer:
    """Raise TemplateTooCostly in this thread once ``seconds`` have passed (a line tracer: it
    stops Python-level loops; the size checks above stop what a single C call could build)."""

    def __init__(self, seconds: float, out_of_time: str) -> None:
        self.deadline = time.monotonic() + seconds
        self.out_of_time = out_of_time
        self.count = 0
        self.previous: Any = None

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.count += 1
        if self.count % 500 == 0 and time.monotonic() > self.deadline:
            raise TemplateTooCostly(self.out_of_time)
        return self._line

    def __enter__(self) -> None:
        self.previous = sys.gettrace()
        sys.settrace(lambda frame, event, arg: self._line)

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous)
