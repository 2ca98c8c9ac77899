"""Step kind ``scrub``: replace personal and secret data in text with placeholders.

``with: {text, types}`` (types default to all nine). The output is the scrubbed text, the
placeholders with their types, and the findings' types and offsets, never the values found.
"""

from __future__ import annotations

from typing import Any

from awe.core.errors import ValidationFailed
from awe.engine.context import StepContext
from awe.engine.registry import step_kind


@step_kind(keys={"text", "types"})
def run_scrub(ctx: StepContext, params: Any) -> dict[str, Any]:
    """Scrub ``with.text``."""
    from awe.ai.pii import scrub  # the detectors load when a step runs, not for awe validate

    if not isinstance(params, dict) or not isinstance(params.get("text"), str):
        raise ValidationFailed("scrub needs with.text as text")
    types = params.get("types")
    if types is not None and (
        not isinstance(types, list) or not all(isinstance(t, str) for t in types)
    ):
        raise ValidationFailed("scrub: with.types must be a list of PII type names")
    result = scrub(params["text"], types=types, phone_regions=phone_regions(ctx))
    counts: dict[str, int] = {}
    for finding in result.findings:
        counts[finding.type] = counts.get(finding.type, 0) + 1
    return {
        "text": result.text,
        "placeholders": result.placeholders,
        "counts": counts,
        "findings": [{"type": f.type, "start": f.start, "end": f.end} for f in result.findings],
    }


def phone_regions(ctx: StepContext) -> tuple[str, ...]:
    """The phone regions of the settings."""
    return tuple(ctx.settings.pii_phone_regions.split(","))
