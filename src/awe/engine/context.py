"""What a step kind is given: who it is, how to log and report progress, and whether to stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from awe.engine.errors import StepCancelled

if TYPE_CHECKING:  # a kind's module (loaded to check a file) needs neither at run time
    from awe.core.config import Settings
    from awe.storage.database import Database

EventSink = Callable[[str, str, str, dict[str, Any] | None], None]  # type, level, message, data


@dataclass
class StepContext:
    """The context of one attempt of one step."""

    run_id: str
    step_id: str
    step_key: str
    attempt: int
    dry_run: bool
    #: time.monotonic() value after which the step has timed out; None for no timeout.
    deadline: float | None
    timeout: float | None
    emit: EventSink
    #: The worker's settings (providers, SMTP, limits): what a kind may read of the configuration.
    settings: Settings
    #: The worker's database, for kinds that keep data of their own (the knowledge base).
    db: Database
    cancel_event: threading.Event = field(default_factory=threading.Event)
    #: The item's position when this is one call of a for_each step.
    item_index: int | None = None

    @property
    def idempotency_key(self) -> str:
        """``{run_id}/{step_key}`` (``/{index}`` for an item of a for_each): the same on every
        attempt, and distinct for each item; pass it to external side effects."""
        base = f"{self.run_id}/{self.step_key}"
        return base if self.item_index is None else f"{base}/{self.item_index}"

    @property
    def cancelled(self) -> bool:
        """True once the run was cancelled (seen on the worker's next heartbeat)."""
        return self.cancel_event.is_set()

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or None."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self) -> None:
        """Raise StepCancelled if the run was cancelled; long-running kinds call this."""
        if self.cancelled:
            raise StepCancelled()

    def log(self, message: str, *, level: str = "info", **data: Any) -> None:
        """Append a log line to the run's events."""
        self.emit("log", level, message, data or None)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress from 0 to 1."""
        self.emit("progress", "info", message, {"fraction": max(0.0, min(1.0, fraction))})
