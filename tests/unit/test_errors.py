"""The error hierarchy: one root, exit codes and HTTP statuses fixed per class."""

from __future__ import annotations

import pytest

from awe.core import errors


@pytest.mark.parametrize(
    ("cls", "exit_code", "http_status"),
    [
        (errors.AweError, 1, 500),
        (errors.DependencyError, 2, 503),
        (errors.ConfigurationError, 3, 500),
        (errors.ConnectionFailed, 4, 503),
        (errors.PermissionDenied, 5, 403),
        (errors.ValidationFailed, 3, 422),
        (errors.NotFound, 1, 404),
        (errors.Conflict, 1, 409),
    ],
)
def test_codes(cls: type[errors.AweError], exit_code: int, http_status: int) -> None:
    """Each class maps to the operational exit code and HTTP status documented for it."""
    assert issubclass(cls, errors.AweError)
    assert (cls.exit_code, cls.http_status) == (exit_code, http_status)


def test_docstring_is_default_message() -> None:
    """Without a message, the class docstring is the message; details are kept."""
    exc = errors.NotFound(run_id="r1")
    assert exc.message == "Not found."
    assert exc.details == {"run_id": "r1"}
    assert str(errors.Conflict("already running")) == "already running"
