"""Templates in step parameters: Jinja2 in a sandbox, strict about missing variables.

A string that is exactly one ``{{ expression }}`` yields the expression's native value (a list
stays a list, an integer an integer); any other string with templates renders to a string.
Besides Jinja's filters there are ``fromjson`` (read JSON a script printed) and ``shquote``
(quote a value for a POSIX shell).

Whatever a template does, rendering it fails only with a ``validation`` StepError naming the
template, and its cost is bounded: repetitions (``'a' * n``), powers, padding widths and
replacements that would build huge values are refused, and a template with statements (loops)
gets a time budget.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, UndefinedError
from jinja2 import filters as jinja_filters
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from awe.engine.errors import StepError
from awe.storage.privacy import readable

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
#: The largest string or list a template may build by repetition, padding or replacement.
MAX_SIZE = 1_000_000
#: Powers whose result would have more bits than this are refused.
MAX_POWER_BITS = 100_000
#: Seconds a template may take to render. Templates render when a step becomes ready, inside
#: the transaction that readies it: this bounds how long one may hold it.
TIME_BUDGET = 0.5
#: The longest text (or JSON) one template may give: passing big data between steps is fine,
#: building it out of nothing is not.
MAX_RENDERED = 16 * 1024 * 1024
# Widths and precisions in %-formats and format specs ("%999999999d", "%.9999999d",
# "{:>999999999}").
_WIDTHS = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?|\{[^{}]*:[^{}]*?(\d{7,})")
# Methods of str that pad or repeat to a size given as an argument.
_PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})


class TemplateTooCostly(Exception):
    """A template would take too much memory or time."""


class NotStorable(Exception):
    """A template gives a value that cannot be stored (not JSON: a range, infinity, an object)."""


def _check_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise TemplateTooCostly(f"{what} would make {size:,} items (at most {MAX_SIZE:,})")


def _check_format(template: str, args: tuple[Any, ...] = ()) -> None:
    for match in _WIDTHS.finditer(template):
        for width in match.groups():
            if width is not None and (width == "*" or int(width) > MAX_SIZE):
                raise TemplateTooCostly(f"a format width of {width} is too large")
    # A width can also come from the arguments ("{0:>{1}}"): no argument may be that big.
    for value in args:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
            raise TemplateTooCostly(f"a format argument of {value} is too large")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with the operators and calls that can build huge values checked first."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse repetitions, powers and formats whose result would be huge."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
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
            _check_format(left, right if isinstance(right, tuple) else (right,))
        return left % right

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's str.format, with widths (and width arguments) checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = str(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> str:
            values = [*args, *kwargs.values()]
            values += [v for mapping in args if isinstance(mapping, dict) for v in mapping.values()]
            _check_format(template, tuple(values))
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
    _check_format(str(text), (*args, *kwargs.values()))


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


def has_template(value: Any) -> bool:
    """True when ``value`` contains a template anywhere."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Template:
    return ENVIRONMENT.from_string(source)


@functools.lru_cache(maxsize=1024)
def _expression(source: str) -> Callable[..., Any]:
    return ENVIRONMENT.compile_expression(source, undefined_to_none=False)


def render(value: Any, context: dict[str, Any], *, where: str) -> Any:
    """Resolve every template in ``value``; raise a validation StepError naming ``where``."""
    if isinstance(value, dict):
        return {k: render(v, context, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or not has_template(value):
        return value
    try:
        with _time_budget(TIME_BUDGET):
            single = _SINGLE.match(value)
            if single and "{{" not in single["expr"] and "}}" not in single["expr"]:
                result = _expression(single["expr"])(**context)
                if isinstance(result, Undefined):
                    result._fail_with_undefined_error()
                return _storable(_native(result))
            rendered = _compiled(value).render(**context)
        if len(rendered) > MAX_RENDERED:
            raise TemplateTooCostly(f"it renders {len(rendered):,} characters")
        return rendered
    except UndefinedError as exc:
        raise _invalid(f"{where}: {exc.message} in template {_shown(value)}") from None
    except TemplateTooCostly as exc:
        raise _invalid(f"{where}: template {_shown(value)} is too costly: {exc}") from None
    except NotStorable as exc:
        raise _invalid(f"{where}: template {_shown(value)} cannot be a parameter: {exc}") from None
    except TemplateError as exc:
        raise _invalid(f"{where}: template error: {exc} in {_shown(value)}") from None
    except Exception as exc:  # noqa: BLE001 - whatever a template raises belongs to its step
        reason = str(exc) or type(exc).__name__
        raise _invalid(
            f"{where}: template {_shown(value)} raised {type(exc).__name__}: {reason[:500]}"
        ) from None


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


def _shown(template: str) -> str:
    return repr(template if len(template) <= 300 else template[:300] + "…")


def _invalid(message: str) -> StepError:
    # The message may quote values (a template, what it raised): in privacy mode it is scrubbed
    # here, inside the transaction that renders; it is short (templates are cut at 300
    # characters) and this happens only when a template fails.
    return StepError(str(readable(message)), category="validation", retryable=False)


_shared = threading.local()


@contextmanager
def shared_budget(seconds: float) -> Iterator[None]:
    """Every template rendered inside, in this thread, shares one deadline ``seconds`` away (the
    earlier one wins when these nest): one run's templates together cannot hold a transaction
    longer, however many steps become ready at once."""
    outer = getattr(_shared, "deadline", None)
    mine = time.monotonic() + seconds
    _shared.deadline = mine if outer is None else min(outer, mine)
    try:
        yield
    finally:
        _shared.deadline = outer


class _time_budget:
    """Raise TemplateTooCostly in this thread once ``seconds`` have passed, or the shared
    deadline (a line tracer: it stops Python-level loops; the size checks above stop what a
    single C call could build)."""

    def __init__(self, seconds: float) -> None:
        shared = getattr(_shared, "deadline", None)
        own = time.monotonic() + seconds
        self.deadline = own if shared is None else min(own, shared)
        self.seconds = seconds
        self.count = 0
        self.previous: Any = None

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.count += 1
        if self.count % 500 == 0 and time.monotonic() > self.deadline:
            raise TemplateTooCostly(f"rendering took longer than {self.seconds:g} s")
        return self._line

    def __enter__(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateTooCostly("this run's templates have used up their time")
        self.previous = sys.gettrace()
        sys.settrace(lambda frame, event, arg: self._line)

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self.previous)


def truthy(value: Any) -> bool:
    """Whether a rendered ``when:`` is true (strings 'false', '0', 'no', '' are false)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)
