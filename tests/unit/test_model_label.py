"""The model label of the LLM metrics stays bounded whatever a step names as its model."""

from __future__ import annotations

import pytest

from awe.ai import measured


def test_model_labels_are_file_names_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local model's path counts under its file name; once the process has counted
    MAX_MODEL_LABELS names, new ones count as "other" while known ones keep their label."""
    monkeypatch.setattr(measured, "_seen", set())
    assert measured.model_label("/home/me/models/smollm2.Q4.gguf") == "smollm2.Q4.gguf"
    assert measured.model_label("gpt-4o-mini") == "gpt-4o-mini"
    assert measured.model_label("") == "default"
    for n in range(measured.MAX_MODEL_LABELS * 2):
        measured.model_label(f"templated-{n}")
    assert len(measured._seen) == measured.MAX_MODEL_LABELS
    assert measured.model_label("never-seen-before") == "other"
    assert measured.model_label("gpt-4o-mini") == "gpt-4o-mini"
