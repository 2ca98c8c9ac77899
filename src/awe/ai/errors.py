"""How AI provider failures are classified for the engine: retry what may pass, not what won't.

Rate limits, timeouts, unreachable servers and server errors are retryable; a bad key, a refused
request, an unknown model and output that does not fit its schema are not.
"""

from __future__ import annotations

from awe.engine.errors import StepError


def rate_limited(provider: str, detail: str) -> StepError:
    """The provider said 'too many requests'."""
    return StepError(f"{provider}: rate limited: {detail}", category="rate_limited", retryable=True)


def timed_out(provider: str, detail: str) -> StepError:
    """The provider did not answer in time."""
    return StepError(f"{provider}: timed out: {detail}", category="timeout", retryable=True)


def unreachable(provider: str, detail: str) -> StepError:
    """The provider's server could not be reached."""
    return StepError(f"{provider}: cannot connect: {detail}", category="connection", retryable=True)


def server_error(provider: str, status: int | None, detail: str) -> StepError:
    """The provider failed on its side (5xx): worth another try."""
    code = f" {status}" if status else ""
    return StepError(
        f"{provider}: server error{code}: {detail}",
        category=f"provider:{status or 'error'}",
        retryable=True,
    )


def auth_failed(provider: str, detail: str) -> StepError:
    """The key is missing, wrong or not allowed: retrying cannot help."""
    return StepError(
        f"{provider}: authentication failed: {detail}", category="auth", retryable=False
    )


def bad_request(provider: str, detail: str) -> StepError:
    """The provider refused the request itself (unknown model, bad parameter)."""
    return StepError(f"{provider}: bad request: {detail}", category="bad_request", retryable=False)


def by_status(provider: str, status: int, detail: str) -> StepError:
    """Classify an HTTP status from a provider."""
    if status == 429:
        return rate_limited(provider, detail)
    if status in (401, 403):
        return auth_failed(provider, detail)
    if status in (408, 504):
        return timed_out(provider, detail)
    if status >= 500:
        return server_error(provider, status, detail)
    return bad_request(provider, f"{status} {detail}")
