"""The one exception hierarchy of awe.

Every error a user can see is an ``AweError``. Each class's docstring is its default message; the
class carries the exit code the CLI uses (the operational scripts' codes: 1 general, 2 dependency,
3 configuration, 4 connection, 5 permission) and the HTTP status the API answers with. The CLI and
the API each map these in exactly one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AweError(Exception):
    """Something went wrong."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    #: Short machine-readable name, used as the problem type in the API.
    code: ClassVar[str] = "error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
        super().__init__(self.message)


class ConfigurationError(AweError):
    """The configuration is invalid."""

    exit_code = 3
    http_status = 500
    code = "configuration"


class DependencyError(AweError):
    """A dependency that this needs is missing."""

    exit_code = 2
    http_status = 503
    code = "dependency"


class ConnectionFailed(AweError):
    """A service could not be reached."""

    exit_code = 4
    http_status = 503
    code = "connection"


class PermissionDenied(AweError):
    """Permission denied."""

    exit_code = 5
    http_status = 403
    code = "permission"


class ValidationFailed(AweError):
    """The input is invalid."""

    # Bad input is a configuration problem for the operational exit codes: fix it, do not retry.
    exit_code = 3
    http_status = 422
    code = "validation"


class NotFound(AweError):
    """Not found."""

    exit_code = 1
    http_status = 404
    code = "not-found"


class Conflict(AweError):
    """This conflicts with the current state."""

    exit_code = 1
    http_status = 409
    code = "conflict"


class AuthenticationFailed(AweError):
    """Authentication failed."""

    exit_code = 5
    http_status = 401
    code = "unauthenticated"


class TooManyRequests(AweError):
    """Too many attempts; try again later."""

    exit_code = 1
    http_status = 429
    code = "too-many-requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after
