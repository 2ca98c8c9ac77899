"""Templates in step parameters: Jinja2 in a sandbox, strict about missing variables.

A string that is exactly one ``{{ expression }}`` yields the expression's native value (a list
stays a list, an integer an integer); any other string with templates renders to a string.

Whatever a template does, rendering it fails only with a ``validation`` StepError naming the
template, and its cost is bounded. Plain templates (engine/template_plain.py: reading values and
passing them through filters, the great majority) that read little (SMALL_CONTEXT) render in
this thread, in the sandbox of engine/template_sandbox.py; every other template renders in a
child process with a memory limit, killed when its time is up (engine/template_child.py). Each
template has half a second; the templates of one pass of the engine over a run share two
seconds, plus a millisecond for each template, twelve at most, so a run whose templates are many
or slow cannot hold a transaction long.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from awe.engine import template_child
from awe.engine.errors import StepError
from awe.engine.secret_refs import REFERENCE, SecretRefs, render_tag
from awe.engine.template_plain import is_plain
from awe.engine.template_reads import Pruned, reads
from awe.engine.template_sandbox import ENVIRONMENT, TemplateFailed, render_here, too_costly

__all__ = ["ENVIRONMENT", "has_template", "render", "shared_budget", "truthy"]

#: Seconds one template may take to render. Templates render when a step becomes ready, inside
#: the transaction that readies it: this bounds how long one may hold it.
TIME_BUDGET = 0.5
#: What each template adds to the time the templates sharing a budget may take together, and
#: the most they may ever take together.
PER_TEMPLATE_SECONDS = 0.001
MAX_SHARED_SECONDS = 12.0
#: Plain templates render in this process when what they may read is at most this many
#: characters of JSON; with more, in the template process like the others.
SMALL_CONTEXT = 16 * 1024
_OUT_OF_TIME = f"rendering took longer than {TIME_BUDGET:g} s"
_USED_UP = "this run's templates have used up their time"


def has_template(value: Any) -> bool:
    """True when ``value`` contains a template anywhere."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def render(value: Any, context: dict[str, Any], *, where: str) -> Any:
    """Resolve every template in ``value``; raise a validation StepError naming ``where``."""
    if isinstance(value, dict):
        return {k: render(v, context, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or not has_template(value):
        return value
    budget: _Budget | None = getattr(_shared, "budget", None)
    seconds, out_of_time = TIME_BUDGET, _OUT_OF_TIME
    if budget is not None:
        budget.templates += 1
        left = budget.left()
        if left <= 0:
            raise _invalid(f"{where}: {too_costly(value, _USED_UP)}")
        if left < TIME_BUDGET:
            seconds, out_of_time = left, _USED_UP
    started = time.monotonic()
    try:
        read = reads(value)
        if read is None:  # it does not parse: say why, in the sandbox
            return render_here(value, context, None)
        taken, item_taken = Pruned(), Pruned()
        data: dict[str, Any] = {}
        item: list[Any] = []
        for name, paths in read:
            if name == "item" and "item" in context:
                item = [item_taken.take(context["item"], paths)]
            elif name in context and name != "secrets":
                data[name] = taken.take(context[name], paths, (name,))
        if is_plain(value) and _small([*taken.leaves, *item_taken.leaves], budget):
            return render_here(value, context, None)
        apart = template_child.Apart(data, [tuple(taken.shape), *taken.leaves], item)
        return _render_apart(value, apart, context.get("secrets"), seconds, out_of_time)
    except TemplateFailed as exc:
        raise _invalid(f"{where}: {exc}") from None
    except template_child.Unavailable as exc:
        raise StepError(f"{where}: {exc}", category="internal", retryable=True) from None
    finally:
        if budget is not None:
            budget.spent += time.monotonic() - started


def _render_apart(
    value: str, apart: template_child.Apart, refs: Any, seconds: float, out_of_time: str
) -> Any:
    """Render in a child process: it gets what the template reads of the data (kept while the
    same objects are read), the item and, instead of the secret references (which need the
    instance key), a key it tags references with for this one rendering; the ones whose tag is
    right become this step's references here."""
    key = secrets.token_hex(16) if isinstance(refs, SecretRefs) else None
    result = template_child.render(value, apart, key=key, seconds=seconds, out_of_time=out_of_time)
    if key is None or not isinstance(refs, SecretRefs):
        return result
    return _with_references(result, refs, key)


def _with_references(value: Any, refs: SecretRefs, key: str) -> Any:
    if isinstance(value, str):
        return REFERENCE.sub(
            lambda match: (
                str(refs[match[1]])
                if hmac.compare_digest(match[2], render_tag(key, match[1]))
                else match[0]
            ),
            value,
        )
    if isinstance(value, dict):
        return {k: _with_references(v, refs, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_references(v, refs, key) for v in value]
    return value


def _small(leaves: list[Any], budget: _Budget | None) -> bool:
    """Whether what a template reads is at most SMALL_CONTEXT characters of JSON (the sizes of
    the data of one pass are kept: its templates read the same objects)."""
    sizes = budget.sizes if budget is not None else {}
    total = 0
    for value in leaves:
        known = sizes.get(id(value))
        if known is None or known[0] is not value:
            known = sizes[id(value)] = (value, _size_at_most(value, SMALL_CONTEXT))
        total += known[1]
        if total > SMALL_CONTEXT:
            return False
    return True


def _size_at_most(value: Any, limit: int) -> int:
    """About how many characters of JSON ``value`` takes, counted up to just past ``limit``."""
    size = 0
    stack = [value]
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, dict):
            size += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            size += 2 + len(item)
            stack.extend(item)
        else:
            size += item.bit_length() // 3 + 1 if isinstance(item, int) else 8
    return size


def _invalid(message: str) -> StepError:
    # The message may quote values (a template, what it raised): in privacy mode it is scrubbed
    # here, inside the transaction that renders; it is short (templates are cut at 300
    # characters) and this happens only when a template fails.
    from awe.storage.privacy import readable  # SQLAlchemy-backed: only when a template fails

    return StepError(str(readable(message)), category="validation", retryable=False)


class _Budget:
    """The time the templates of one pass over a run may take, and what they took."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.templates = 0
        self.spent = 0.0
        # id -> (object, size) of the data its templates read (see _small).
        self.sizes: dict[int, tuple[Any, int]] = {}

    def left(self) -> float:
        allowed = min(self.seconds + PER_TEMPLATE_SECONDS * self.templates, MAX_SHARED_SECONDS)
        return allowed - self.spent


_shared = threading.local()


@contextmanager
def shared_budget(seconds: float) -> Iterator[None]:
    """The templates rendered inside, in this thread, share ``seconds`` (plus a millisecond
    each, MAX_SHARED_SECONDS at most) of rendering time: time spent elsewhere (in the
    database) does not count. Nested inside another, the outer budget holds."""
    if getattr(_shared, "budget", None) is not None:
        yield
        return
    _shared.budget = _Budget(seconds)
    try:
        yield
    finally:
        _shared.budget = None


def truthy(value: Any) -> bool:
    """Whether a rendered ``when:`` is true (strings 'false', '0', 'no', '' are false)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)
