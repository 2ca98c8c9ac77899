"""Splitting text into overlapping chunks that end where the text has a natural break.

A chunk is at most ``size`` characters and breaks at a paragraph end if it can, else at a
sentence end, else at a space; the next chunk starts ``overlap`` characters back (at a word
start), so a sentence cut by a chunk boundary is whole in one of the two.
"""

from __future__ import annotations

import re

_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s+"), re.compile(r"\s+"))


def chunk(text: str, *, size: int, overlap: int) -> list[str]:
    """The chunks of ``text``, in order; stripped, none empty."""
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    chunks: list[str] = []
    start = 0
    length = len(text)
    while start < length:
        end = min(length, start + size)
        if end < length:
            end = _break_before(text, start, end)
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= length:
            break
        following = max(end - overlap, start + 1)
        # Start the next chunk at a word boundary inside the overlap.
        space = text.find(" ", following, end)
        start = space + 1 if overlap and space != -1 else end
    return chunks


def _break_before(text: str, start: int, end: int) -> int:
    """The best place to end a chunk of text[start:end]: the last natural break past its middle."""
    window = text[start:end]
    for pattern in _BREAKS:
        found = [m.end() for m in pattern.finditer(window)]
        good = [at for at in found if at > len(window) // 2]
        if good:
            return start + good[-1]
    return end
