"""Text out of documents: plain text and Markdown as they are, HTML without markup, PDF pages."""

from __future__ import annotations

import io
from html.parser import HTMLParser

from awe.ai.knowledge.validate import DocumentRefused

_SKIP = frozenset({"script", "style", "noscript", "template", "head"})
_BLOCK = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
     "article", "pre", "blockquote", "table", "header", "footer", "title"}
)  # fmt: skip


def decode(data: bytes) -> str:
    """Bytes as text: UTF-8 (with or without BOM), else Windows-1252, which decodes anything."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self.skipping:
            self.skipping -= 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The visible text of an HTML page (no scripts, styles or tags), paragraphs kept."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return _squeeze("\n".join(lines))


def pdf_text(data: bytes, name: str) -> str:
    """The text layer of a PDF, page by page (pypdf)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentRefused(f"{name}: the PDF is encrypted; store an unencrypted copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DocumentRefused(f"{name}: not a readable PDF ({exc})") from None
    text = _squeeze("\n\n".join(pages))
    if not text.strip():
        raise DocumentRefused(f"{name}: the PDF has no text layer (a scan needs OCR first)")
    return text


def extract(kind: str, data: bytes, name: str) -> str:
    """The document's text; DocumentRefused if there is none."""
    if kind == "pdf":
        text = pdf_text(data, name)
    elif kind == "html":
        text = html_text(decode(data))
    else:
        text = decode(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DocumentRefused(f"{name}: no text in it")
    return text


def _squeeze(text: str) -> str:
    """At most one blank line in a row."""
    out: list[str] = []
    blank = False
    for line in text.splitlines():
        if line.strip():
            out.append(line.rstrip())
            blank = False
        elif not blank and out:
            out.append("")
            blank = True
    return "\n".join(out).strip() + "\n"
