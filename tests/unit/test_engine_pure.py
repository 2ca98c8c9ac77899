"""Pure engine pieces: templates, cycle detection, did-you-mean, failure classification."""

from __future__ import annotations

import pytest

from awe.core.errors import ValidationFailed
from awe.engine.errors import StepError, StepTimeout, classify, exit_code_failure
from awe.engine.spec import did_you_mean, find_cycle
from awe.engine.templating import has_template, render, truthy

CONTEXT = {"inputs": {"n": 3, "names": ["a", "b"]}, "steps": {"s": {"output": {"text": "hi"}}}}


def test_single_expression_keeps_native_type() -> None:
    """'{{ expr }}' alone yields the value itself: a list stays a list, a number a number."""
    assert render("{{ inputs.names }}", CONTEXT, where="w") == ["a", "b"]
    assert render("{{ inputs.n * 2 }}", CONTEXT, where="w") == 6
    assert render({"k": ["{{ inputs.n }}"]}, CONTEXT, where="w") == {"k": [3]}


def test_mixed_text_renders_a_string() -> None:
    """Text around templates renders to a string; filters such as tojson work."""
    assert render("n={{ inputs.n }}!", CONTEXT, where="w") == "n=3!"
    assert render("{{ inputs.names | tojson }} x", CONTEXT, where="w") == '["a", "b"] x'


def test_missing_variable_is_an_error_naming_where() -> None:
    """A missing variable is a non-retryable validation error naming the field and the name."""
    with pytest.raises(StepError) as info:
        render("{{ steps.s.output.nope }}", CONTEXT, where="step b: with.q")
    assert info.value.category == "validation"
    assert not info.value.retryable
    assert info.value.message.startswith("step b: with.q:")
    assert "nope" in info.value.message
    with pytest.raises(StepError, match="question"):
        render("Q: {{ inputs.question }}", CONTEXT, where="w")


def test_sandbox_refuses_unsafe_access() -> None:
    """Templates cannot reach Python internals."""
    with pytest.raises(StepError, match="template error"):
        render("{{ ''.__class__.__mro__ }}", CONTEXT, where="w")


def test_has_template_and_truthy() -> None:
    """Detection looks inside containers; 'false', '0', '' are false as rendered conditions."""
    assert has_template({"a": [1, "{{ x }}"]})
    assert not has_template({"a": [1, "plain"]})
    assert [truthy(v) for v in ("false", "0", "", "no", "yes", True, 0)] == [
        False,
        False,
        False,
        False,
        True,
        True,
        False,
    ]


def test_find_cycle_names_members() -> None:
    """A cycle is returned as the path that closes it; an acyclic graph gives None."""
    assert find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]}) in (
        ["a", "c", "b", "a"],
        ["b", "a", "c", "b"],
        ["c", "b", "a", "c"],
    )
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_did_you_mean() -> None:
    """A close name is suggested; a far one is not."""
    assert did_you_mean("serch", ["search", "answer"]) == " (did you mean 'search'?)"
    assert did_you_mean("zzz", ["search"]) == ""


@pytest.mark.parametrize(
    ("code", "retryable"), [(1, True), (2, False), (3, False), (4, True), (5, False), (7, True)]
)
def test_exit_codes_classified(code: int, retryable: bool) -> None:
    """Exit codes 2, 3 and 5 are not retryable; 1, 4 and others are."""
    failure = exit_code_failure(code, "x")
    assert failure.category == f"exit_code:{code}"
    assert failure.retryable is retryable


def test_classify_exceptions() -> None:
    """Plain exceptions retry as exception:Type; timeouts retry; validation errors do not."""
    assert classify(RuntimeError("x")).message == "x"
    assert classify(KeyError("k")).category == "exception:KeyError"
    assert classify(KeyError("k")).retryable
    assert classify(StepTimeout(3)).category == "timeout"
    assert classify(StepTimeout(3)).retryable
    assert classify(ValidationFailed("bad")).category == "validation"
    assert not classify(ValidationFailed("bad")).retryable


@pytest.mark.parametrize(
    ("where", "value"),
    [("step id", "x\n"), ("workflow name", "flow\n"), ("queue", "q\n")],
)
def test_names_with_a_trailing_newline_are_refused(where: str, value: str) -> None:
    """A step id, workflow name or queue ending in a newline is refused (``$`` in a pattern
    accepts one; the engine's set-based completion relies on ids being only letters, digits
    and underscores)."""
    from awe.engine.spec import normalise_spec

    spec = {"name": "flow", "steps": [{"id": "x", "kind": "noop"}]}
    if where == "step id":
        spec["steps"] = [{"id": value, "kind": "noop"}]
    elif where == "workflow name":
        spec["name"] = value
    else:
        spec["queue"] = value
    with pytest.raises(ValidationFailed):
        normalise_spec(spec, known_kind=lambda kind: True)
