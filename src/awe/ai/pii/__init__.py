"""Finding and replacing personal and secret data in text: nine types, precision first.

``scan(text)`` lists findings (type, character offsets, the text); ``scrub(text)`` replaces
each with a placeholder such as ``<EMAIL_1>``, the same placeholder for the same value within
one call, so a scrubbed document still reads coherently ("<EMAIL_1> wrote to <EMAIL_2>, then
<EMAIL_1> called"). Where two findings overlap, the more specific type wins (a password inside a
URL is URL credentials, not a secret; a card number is not also a phone number).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from awe.ai.pii import detectors
from awe.core.config import Settings
from awe.core.crypto import InstanceKey, instance_key
from awe.core.errors import ValidationFailed
from awe.storage import privacy

#: Types in priority order: on overlapping spans the earlier type wins.
TYPES: tuple[str, ...] = (
    "url_credentials",
    "secret",
    "email",
    "iban",  # before cards: an IBAN's digits may pass Luhn, its checksum is the stronger proof
    "credit_card",
    "ssn",
    "date_of_birth",
    "phone",
    "ip_address",
)


@dataclass(frozen=True)
class Finding:
    """One sensitive value: its type and its [start, end) character offsets in the text."""

    type: str
    start: int
    end: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        """``{"type", "start", "end", "text"}``."""
        return asdict(self)


@dataclass(frozen=True)
class Scrubbed:
    """Scrubbed text, the findings in the original, and each placeholder's type."""

    text: str
    findings: list[Finding]
    placeholders: dict[str, str] = field(default_factory=dict)


def _detectors(
    phone_regions: tuple[str, ...],
) -> dict[str, Callable[[str], Iterable[tuple[int, int]]]]:
    return {
        "url_credentials": detectors.url_credentials,
        "secret": detectors.secrets,
        "email": detectors.emails,
        "credit_card": detectors.credit_cards,
        "iban": detectors.ibans,
        "ssn": detectors.ssns,
        "date_of_birth": detectors.dates_of_birth,
        "phone": lambda text: detectors.phones(text, phone_regions),
        "ip_address": detectors.ip_addresses,
    }


def scan(
    text: str, *, types: Iterable[str] | None = None, phone_regions: tuple[str, ...] = ("US",)
) -> list[Finding]:
    """Every finding in ``text`` (of ``types``, default all), in text order, none overlapping."""
    wanted = set(TYPES if types is None else types)
    unknown = wanted - set(TYPES)
    if unknown:
        raise ValidationFailed(
            f"unknown PII type(s) {', '.join(sorted(unknown))}; known: {', '.join(TYPES)}"
        )
    candidates: list[tuple[int, int, int, str]] = []
    for kind, detect in _detectors(phone_regions).items():
        if kind in wanted:
            rank = TYPES.index(kind)  # the order of TYPES is the order of evidence
            candidates.extend((start, end, rank, kind) for start, end in detect(text))
    accepted: list[tuple[int, int, str]] = []  # kept sorted by start: overlaps by bisection
    # Most specific type first, then longest span: each accepted span blocks what overlaps it.
    for start, end, _, kind in sorted(candidates, key=lambda c: (c[2], c[0] - c[1], c[0])):
        at = bisect.bisect_left(accepted, (start, end, kind))
        clear = (at == 0 or accepted[at - 1][1] <= start) and (
            at == len(accepted) or accepted[at][0] >= end
        )
        if start < end and clear:
            accepted.insert(at, (start, end, kind))
    return [Finding(kind, s, e, text[s:e]) for s, e, kind in accepted]


#: Makes the placeholder of a (type, normalised value); the default numbers them in order.
Placeholder = Callable[[str, str], str]


def scrub(
    text: str,
    *,
    types: Iterable[str] | None = None,
    phone_regions: tuple[str, ...] = ("US",),
    numbering: dict[tuple[str, str], str] | None = None,
    placeholder: Placeholder | None = None,
) -> Scrubbed:
    """``text`` with every finding replaced by a placeholder, stable per value.

    ``numbering`` (value → placeholder) may be shared between calls, so that several texts of one
    document (the strings of a JSON value) number their placeholders together. ``placeholder``
    names them instead of numbering them (privacy mode uses keyed tags, the same for a value
    everywhere).
    """
    findings = scan(text, types=types, phone_regions=phone_regions)
    numbers = numbering if numbering is not None else {}
    parts: list[str] = []
    position = 0
    for finding in findings:
        key = (finding.type, _normal(finding.text))
        if key not in numbers:
            if placeholder is not None:
                numbers[key] = placeholder(*key)
            else:
                count = 1 + sum(1 for kind, _ in numbers if kind == finding.type)
                numbers[key] = f"<{finding.type.upper()}_{count}>"
        parts.append(text[position : finding.start])
        parts.append(numbers[key])
        position = finding.end
    parts.append(text[position:])
    used = {(f.type, _normal(f.text)) for f in findings}
    placeholders = {p: kind for (kind, value), p in numbers.items() if (kind, value) in used}
    return Scrubbed("".join(parts), findings, placeholders)


def scrub_value(
    value: Any,
    *,
    phone_regions: tuple[str, ...] = ("US",),
    placeholder: Placeholder | None = None,
) -> Any:
    """Scrub every string inside a JSON-like value (keys kept), numbering placeholders together."""
    numbering: dict[tuple[str, str], str] = {}

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return scrub(
                item, phone_regions=phone_regions, numbering=numbering, placeholder=placeholder
            ).text
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(value)


def keyed_placeholder(key: InstanceKey, kind: str, normal: str) -> str:
    """Privacy mode's placeholder of a value (its type and normalised text): a keyed tag."""
    return f"<{kind.upper()}_{key.tag(f'pii:{kind}:{normal}', length=8)}>"


def placeholders_of(settings: Settings, value: str) -> list[str]:
    """The placeholders privacy mode writes for what ``value`` holds (an erasure looks for
    them too: with the instance key they still point at the person)."""
    regions = tuple(settings.pii_phone_regions.split(","))
    key = instance_key(settings)
    return sorted({keyed_placeholder(key, f.type, _normal(f.text))
                   for f in scan(value, phone_regions=regions)})  # fmt: skip


def configure(settings: Settings) -> None:
    """Set this process's privacy mode from AWE_PII_SCRUBBING (see storage/privacy.py).

    The instance key is installed either way (loaded on first use), so values sealed while the
    mode was on still open after it is turned off. In privacy mode, placeholders are keyed tags
    (``<EMAIL_3fa2c1d0>``): one value gets the same one everywhere, distinct values distinct
    ones, and none can be reversed without the key.
    """

    def key() -> InstanceKey:
        return instance_key(settings)

    if not settings.pii_scrubbing:
        privacy.install(scrubber=None, sealer=key, sealing=False)
        return
    regions = tuple(settings.pii_phone_regions.split(","))

    def tagged(kind: str, value: str) -> str:
        return keyed_placeholder(key(), kind, value)

    privacy.install(
        scrubber=lambda value: scrub_value(value, phone_regions=regions, placeholder=tagged),
        sealer=key,
        sealing=True,
    )


def _normal(value: str) -> str:
    """The same value however it was spaced or cased (card numbers, phones, emails)."""
    return "".join(ch for ch in value.lower() if ch.isalnum() or ch in "@._:-")
