"""Templates in step parameters: Jinja2 in a sandbox, strict about missing variables.

A string that is exactly one ``{{ expression }}`` yields the expression's native value (a list
stays a list, an integer an integer); any other string with templates renders to a string.
Besides Jinja's filters there is ``fromjson``, to read JSON a script printed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from awe.engine.errors import StepError

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
# The reverse of Jinja's own tojson: read what a script printed as JSON.
ENVIRONMENT.filters["fromjson"] = json.loads


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
    try:
        single = _SINGLE.match(value)
        if single and "{{" not in single["expr"] and "}}" not in single["expr"]:
            result = ENVIRONMENT.compile_expression(single["expr"], undefined_to_none=False)(
                **context
            )
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            return result
        return ENVIRONMENT.from_string(value).render(**context)
    except UndefinedError as exc:
        raise StepError(
            f"{where}: {exc.message} in template {value!r}", category="validation", retryable=False
        ) from None
    except TemplateError as exc:
        raise StepError(
            f"{where}: template error: {exc}", category="validation", retryable=False
        ) from None


def truthy(value: Any) -> bool:
    """Whether a rendered ``when:`` is true (strings 'false', '0', 'no', '' are false)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)
