"""Privacy mode at the storage boundary (AWE_PII_SCRUBBING=true): sealed payloads, clean text.

What execution needs (run inputs and outputs, specs and their literals, rendered step inputs and
outputs, schedule inputs, workflow sources, document bytes) lives in *sealed* columns: with
privacy mode on, each value is encrypted with the instance key as it is written, and opened in
memory as it is read, so steps get the real values (an email is delivered to its address) and
the database file holds none of them in clear.

Every *readable* copy (event messages and data, error messages, what the API and the CLI show)
is scrubbed by whoever makes it, before any transaction opens: the worker scrubs logs and errors
on the step's own thread, and views scrub what they show (:func:`readable`). Nothing here scrubs
while a write lock is held.

Text columns also drop NUL characters (PostgreSQL refuses them in text), on every backend alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import JSON, Dialect, LargeBinary, Text
from sqlalchemy.types import TypeDecorator

Scrubber = Callable[[Any], Any]
#: The key of the JSON object a sealed JSON value is stored as.
SEALED_KEY = "__awe_sealed_v1__"
#: What sealed text and bytes start with.
SEALED_TEXT = "awe-sealed-v1:"
SEALED_BYTES = b"awe-sealed-v1\n"
# A plain value that merely looks sealed (anyone can write {"__awe_sealed_v1__": …} into a step's
# parameters, or a document that starts like one) is stored wrapped in these, so reading it back
# never tries to open it.
LITERAL_KEY = "__awe_literal_v1__"
LITERAL_TEXT = "awe-literal-v1:"
LITERAL_BYTES = b"awe-literal-v1\n"
NUL_REPLACEMENT = "\ufffd"


def _looks_stored(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and (SEALED_KEY in value or LITERAL_KEY in value)
    )


class Sealer(Protocol):
    """Seals and opens values (the instance key, see core/crypto.py)."""

    def seal(self, plaintext: bytes, *, purpose: str) -> str:
        """``plaintext`` encrypted for ``purpose``, as ASCII text."""
        ...

    def open(self, token: str, *, purpose: str) -> bytes:
        """What ``seal`` sealed for ``purpose``."""
        ...


@dataclass
class _State:
    scrubber: Scrubber | None = None
    #: Returns the sealer; called only when a value must be sealed or opened.
    sealer: Callable[[], Sealer] | None = None
    sealing: bool = False


_state = _State()


def install(
    *, scrubber: Scrubber | None, sealer: Callable[[], Sealer] | None, sealing: bool
) -> None:
    """Set this process's privacy mode: the scrubber of readable copies, and the sealer.

    ``sealer`` should be installed whenever the instance key is known, even with sealing off,
    so that values sealed earlier (privacy mode was on then) still open.
    """
    _state.scrubber = scrubber
    _state.sealer = sealer
    _state.sealing = sealing and sealer is not None


def scrubbing() -> bool:
    """Whether privacy mode scrubs readable copies."""
    return _state.scrubber is not None


def sealing() -> bool:
    """Whether payloads are sealed as they are written."""
    return _state.sealing


def readable(value: Any) -> Any:
    """``value`` as it may be shown or stored readably: scrubbed in privacy mode."""
    scrubber = _state.scrubber
    return scrubber(value) if scrubber is not None and value is not None else value


def clean_text(value: str) -> str:
    """``value`` without NUL characters (PostgreSQL refuses them in text) and lone surrogates
    (half characters, as ``surrogateescape`` decoding leaves: no database encoding holds them),
    each replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", NUL_REPLACEMENT)
    return _SURROGATES.sub(NUL_REPLACEMENT, value)


_SURROGATES = re.compile("[\ud800-\udfff]")


def _sealer() -> Sealer:
    if _state.sealer is None:
        raise RuntimeError(
            "a sealed value was read, but this process has no instance key installed"
            " (configure privacy with awe.ai.pii.configure)"
        )
    return _state.sealer()


class SealedJSON(TypeDecorator[Any]):
    """JSON that privacy mode stores encrypted; read back in clear either way."""

    impl = JSON
    cache_ok = True

    def __init__(self, purpose: str = "json") -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """The value, sealed when sealing is on."""
        if value is None:
            return value
        if not _state.sealing:
            return {LITERAL_KEY: value} if _looks_stored(value) else value
        plain = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        return {SEALED_KEY: _sealer().seal(plain, purpose=self.purpose)}

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        """The value, opened if it was sealed."""
        if _looks_stored(value):
            if LITERAL_KEY in value:
                return value[LITERAL_KEY]
            return json.loads(_sealer().open(value[SEALED_KEY], purpose=self.purpose))
        return value


class SealedText(TypeDecorator[str]):
    """Text that privacy mode stores encrypted."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str = "text") -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """The text, sealed when sealing is on (else without NULs)."""
        if value is None:
            return None
        if not _state.sealing:
            text = clean_text(value)
            return LITERAL_TEXT + text if text.startswith((SEALED_TEXT, LITERAL_TEXT)) else text
        return SEALED_TEXT + _sealer().seal(clean_text(value).encode(), purpose=self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        """The text, opened if it was sealed."""
        if value is None:
            return None
        if value.startswith(LITERAL_TEXT):
            return value[len(LITERAL_TEXT) :]
        if value.startswith(SEALED_TEXT):
            return _sealer().open(value[len(SEALED_TEXT) :], purpose=self.purpose).decode()
        return value


class SealedBytes(TypeDecorator[bytes]):
    """Bytes that privacy mode stores encrypted."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, purpose: str = "bytes") -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        """The bytes, sealed when sealing is on."""
        if value is None:
            return value
        if not _state.sealing:
            data = bytes(value)
            return LITERAL_BYTES + data if data.startswith((SEALED_BYTES, LITERAL_BYTES)) else data
        return SEALED_BYTES + _sealer().seal(bytes(value), purpose=self.purpose).encode("ascii")

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        """The bytes, opened if they were sealed."""
        if value is None:
            return None
        data = bytes(value)
        if data.startswith(LITERAL_BYTES):
            return data[len(LITERAL_BYTES) :]
        if data.startswith(SEALED_BYTES):
            token = data[len(SEALED_BYTES) :].decode("ascii")
            return _sealer().open(token, purpose=self.purpose)
        return data


class CleanText(TypeDecorator[str]):
    """Readable text (messages, errors): NUL characters replaced, on every backend."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """The text without NULs."""
        return None if value is None else clean_text(str(value))
