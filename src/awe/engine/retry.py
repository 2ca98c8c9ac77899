"""Retry policy: how many attempts, and how long to wait before each next one."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF = (1.0, 5.0, 25.0, 125.0)
DEFAULT_JITTER = 0.2


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first attempt; ``backoff[i]`` is the wait after attempt i+1."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    jitter: float = DEFAULT_JITTER
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def from_definition(cls, retry: dict[str, Any] | None) -> RetryPolicy:
        """The policy of a step definition's ``retry:`` mapping (defaults for what is missing)."""
        retry = retry or {}
        return cls(
            max_attempts=int(retry.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
            backoff=tuple(float(x) for x in retry.get("backoff", DEFAULT_BACKOFF)),
            jitter=float(retry.get("jitter", DEFAULT_JITTER)),
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), jitter applied."""
        if not self.backoff:
            return 0.0
        base = self.backoff[min(attempt, len(self.backoff)) - 1]
        return max(0.0, base * (1 + self.rng.uniform(-self.jitter, self.jitter)))

    def can_retry(self, attempt: int) -> bool:
        """True when another attempt is allowed after attempt number ``attempt``."""
        return attempt < self.max_attempts
