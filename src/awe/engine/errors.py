"""Why a step failed: a category, a message, and whether trying again could help."""

from __future__ import annotations

from dataclasses import dataclass

from awe.core.errors import AweError, ValidationFailed

# Exit codes that retrying cannot fix: the operational scripts' dependency, configuration and
# permission errors, and the shell's "cannot execute" (126) and "command not found" (127).
NON_RETRYABLE_EXIT_CODES = frozenset({2, 3, 5, 126, 127})
NON_RETRYABLE_CATEGORIES = frozenset({"validation", "cancelled"})


class StepError(AweError):
    """A step failed."""

    def __init__(self, message: str, *, category: str, retryable: bool) -> None:
        super().__init__(message)
        self.category = category
        self.retryable = retryable


class StepTimeout(StepError):
    """A step ran past its timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s", category="timeout", retryable=True)


class StepCancelled(StepError):
    """A step was cancelled."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message, category="cancelled", retryable=False)


class LeaseLost(AweError):
    """This worker no longer holds the step's lease; its result is refused."""


class SpecInvalid(ValidationFailed):
    """The workflow spec is invalid."""


@dataclass(frozen=True)
class Failure:
    """A classified failure of one attempt."""

    category: str
    message: str
    retryable: bool


def exit_code_failure(code: int, message: str) -> Failure:
    """Classify a script's exit code per the operational scripts' conventions."""
    return Failure(
        category=f"exit_code:{code}",
        message=message,
        retryable=code not in NON_RETRYABLE_EXIT_CODES,
    )


def classify(exc: BaseException) -> Failure:
    """Turn any exception raised by a step into a Failure."""
    if isinstance(exc, StepError):
        retryable = exc.retryable and exc.category not in NON_RETRYABLE_CATEGORIES
        return Failure(exc.category, exc.message, retryable)
    if isinstance(exc, ValidationFailed):
        return Failure("validation", exc.message, False)
    message = str(exc) or type(exc).__name__
    return Failure(f"exception:{type(exc).__name__}", message, True)
