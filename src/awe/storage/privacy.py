"""Scrubbing personal data at the storage boundary, when the process is told to.

With AWE_PII_SCRUBBING=true the AI layer installs a scrubber here at start-up; the columns that
hold what users and steps produce (run inputs and outputs, step inputs, outputs and errors, event
messages and data) then pass every value through it as it is written. Nothing unscrubbed reaches
the database, whichever code path writes it; steps downstream work on the placeholders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, Dialect, Text
from sqlalchemy.types import TypeDecorator

Scrubber = Callable[[Any], Any]
_scrubber: list[Scrubber] = []


def install(scrubber: Scrubber | None) -> None:
    """Scrub values written from now on with ``scrubber`` (None: stop scrubbing)."""
    _scrubber.clear()
    if scrubber is not None:
        _scrubber.append(scrubber)


def scrubbing() -> bool:
    """Whether a scrubber is installed."""
    return bool(_scrubber)


def scrub(value: Any) -> Any:
    """``value`` scrubbed, if a scrubber is installed."""
    return _scrubber[0](value) if _scrubber and value is not None else value


class ScrubbedJSON(TypeDecorator[Any]):
    """JSON whose strings are scrubbed on the way in when scrubbing is on."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """The value, scrubbed."""
        return scrub(value)


class ScrubbedText(TypeDecorator[str]):
    """Text scrubbed on the way in when scrubbing is on."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """The text, scrubbed."""
        return scrub(value)  # type: ignore[no-any-return]
