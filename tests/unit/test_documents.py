"""Reading documents: text out of HTML and PDF; chunks that overlap at natural breaks."""

from __future__ import annotations

import itertools

import pytest

from awe.ai.knowledge.chunking import chunk
from awe.ai.knowledge.extract import decode, extract, html_text
from awe.ai.knowledge.validate import DocumentRefused
from tests.support.documents import pdf_with_text


def test_chunks_cover_the_text_with_overlap_and_break_at_sentences() -> None:
    """Every sentence is whole in some chunk; chunks stay within the size and overlap."""
    sentences = [f"Sentence {i} says something about item {i}." for i in range(60)]
    text = " ".join(sentences)
    chunks = chunk(text, size=200, overlap=50)
    assert all(len(c) <= 200 for c in chunks)
    assert all(any(s in c for c in chunks) for s in sentences)
    assert all(c.endswith(".") for c in chunks[:-1])  # broke at a sentence end
    for first, second in itertools.pairwise(chunks):
        assert second.split()[0] in first  # the next one starts inside the overlap


def test_paragraphs_are_preferred_breaks_and_small_texts_are_one_chunk() -> None:
    """A paragraph end is the first choice of break; a short text is a single chunk."""
    text = ("a" * 50 + " ") * 2 + "\n\n" + "b " * 60
    first = chunk(text, size=180, overlap=0)[0]
    assert set(first.replace(" ", "")) == {"a"}
    assert chunk("short text", size=100, overlap=10) == ["short text"]
    with pytest.raises(ValueError, match="overlap must be smaller"):
        chunk("x", size=10, overlap=10)


def test_html_text_drops_scripts_styles_and_tags() -> None:
    """Visible text only, with block elements on their own lines."""
    page = (
        "<html><head><title>T</title><style>b{}</style></head><body>"
        "<h1>Head</h1><script>alert(1)</script><p>One &amp; two</p><div>Three</div></body></html>"
    )
    assert html_text(page) == "Head\n\nOne & two\n\nThree\n"


def test_decode_falls_back_for_non_utf8() -> None:
    """UTF-8 (and its BOM) is read as such; other bytes as Windows-1252."""
    assert decode("\ufeffcafé".encode()) == "café"
    assert decode("café".encode("cp1252")) == "café"


def test_pdf_extraction_and_empty_pdf() -> None:
    """A PDF's text layer comes out; a PDF with no text is refused, saying why."""
    assert extract("pdf", pdf_with_text("Hello PDF"), "a.pdf").strip() == "Hello PDF"
    with pytest.raises(DocumentRefused, match="no text layer"):
        extract("pdf", pdf_with_text(), "scan.pdf")
    with pytest.raises(DocumentRefused, match="not a readable PDF"):
        extract("pdf", b"%PDF-1.4 broken", "bad.pdf")
