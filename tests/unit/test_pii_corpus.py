"""The labelled PII corpus (tests/support/pii_corpus.py): deterministic, well formed, hard."""

from __future__ import annotations

from tests.support import pii_corpus


def test_corpus_is_deterministic_and_covers_every_language_and_kind() -> None:
    """The same seed gives the same texts: at least 160, in all 5 languages and all 10 kinds."""
    first, second = pii_corpus.corpus(), pii_corpus.corpus()
    assert first == second
    assert len(first) >= 160
    assert {t["lang"] for t in first} == {"en", "de", "fr", "es", "ko"}
    assert {t["kind"] for t in first} == set(pii_corpus.KINDS)
    assert len(pii_corpus.KINDS) == 10
    assert len({t["id"] for t in first}) == len(first)


def test_every_span_is_non_empty_inside_its_text_and_of_a_known_type() -> None:
    """Gold spans and negatives lie inside the text, cover visible text, and gold never overlaps."""
    for item in pii_corpus.corpus():
        text = item["text"]
        previous_end = 0
        for span in item["spans"]:
            assert span["type"] in pii_corpus.TYPES
            assert 0 <= span["start"] < span["end"] <= len(text)
            assert text[span["start"] : span["end"]].strip(), item["id"]
            assert span["start"] >= previous_end, item["id"]
            previous_end = span["end"]
        for negative in item["negatives"]:
            assert negative["kind"] in pii_corpus.NEGATIVE_KINDS
            assert text[negative["start"] : negative["end"]].strip(), item["id"]
        assert item["regions"], item["id"]
        assert "⟦" not in text, item["id"]


def test_corpus_holds_at_least_eight_hard_negatives_of_each_kind() -> None:
    """Each kind of look-alike (versions, ids with a year, SSH remotes, placeholders…) shows up 8+
    times, so a detector that trips on one kind loses measurable precision."""
    counts = pii_corpus.negative_counts()
    assert {kind: counts[kind] for kind in pii_corpus.NEGATIVE_KINDS if counts[kind] < 8} == {}
