"""Dates of birth: a date with birth context, in five languages.

A date counts when a birth word stands shortly before it ("DOB: 1985-03-14", "geb. 14. März
1985", "née le 3 mars 1990", "nacido el 3 de mayo de 1990", "생년월일: 1985년 3월 14일"), under a
birth-like key ("date_of_birth": "…", birthDate=…), or in the column of a table whose header
names birth (CSV, semicolon or tab separated). Two-digit years count only with such context,
which every match needs anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

Span = tuple[int, int]

_MONTHS = (
    # English
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    "|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
    # German
    "|januar|februar|märz|maerz|mai|juni|juli|oktober|dezember"
    # French
    "|janvier|février|fevrier|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre"
    "|décembre|decembre"
    # Spanish
    "|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre"
    "|noviembre|diciembre"
)
_DATE = re.compile(
    r"(?<![\d.:/-])(?:"
    r"(?P<iso>\d{4}[-/.]\d{1,2}[-/.]\d{1,2})"
    r"|(?P<num>\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2}))"
    r"|(?P<ko>\d{4}\s*년\s*\d{1,2}\s*월\s*\d{1,2}\s*일)"
    rf"|(?P<mdy>(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}})"
    rf"|(?P<dmy>\d{{1,2}}(?:st|nd|rd|th|er|\.)? ?(?:de |of )?(?:{_MONTHS})\.?,?"
    r" (?:de )?\d{4})"
    r")(?![\d.:/-]\d)",
    re.IGNORECASE,
)
# Birth words and keys; "(?<![^\W_])" and "(?![^\W_])" are word edges that let "_" and digits
# touch (date_of_birth, birthDate, dob1).
_BIRTH = re.compile(
    r"(?<![^\W\d_])(?:born|birth|birthday|birth[ _-]?date|date[ _-]of[ _-]birth|dob|d\.o\.b\.?"
    r"|geboren|geb\.|geburtsdatum|geburtstag|née?|né\(e\)|date[ _-]de[ _-]naissance"
    r"|date[ _-]naissance|naissance|nacid[oa]|fecha[ _-](?:de[ _-])?nacimiento|nacimiento"
    r"|f\. ?nac\.?|생년월일|출생일?|생일)(?![^\W\d_])",
    re.IGNORECASE,
)
#: How far before a date its "born on" / "DOB:" may stand.
CONTEXT_CHARS = 40
_SEPARATORS = (",", ";", "\t", "|")


def _plausible(value: str) -> bool:
    """A year of birth in range (1900 to this year); a two-digit year is taken as is, since
    only a date with birth context gets here."""
    years = re.findall(r"\d{4}", value)
    return not years or 1900 <= int(years[0]) <= date.today().year


def dates_of_birth(text: str) -> Iterator[Span]:
    """Dates with birth context before them, or in a table column headed by a birth word."""
    seen: set[Span] = set()
    for match in _DATE.finditer(text):
        if not _plausible(match.group()):
            continue
        before = text[max(0, match.start() - CONTEXT_CHARS) : match.start()]
        if _BIRTH.search(before):
            seen.add(match.span())
            yield match.span()
    for span in _table_columns(text):
        if span not in seen:
            yield span


def _table_columns(text: str) -> Iterator[Span]:
    """Dates in the column of a delimited table whose header cell is a birth word."""
    for start, end in column_cells(text, _BIRTH):
        found = _DATE.fullmatch(text[start:end])
        if found and _plausible(found.group()):
            yield start, end


def column_cells(text: str, header: re.Pattern[str]) -> Iterator[Span]:
    """The cells (quotes and spaces trimmed) below a header cell that ``header`` matches whole,
    in a table delimited by commas, semicolons, tabs or bars."""
    offset = 0
    found: tuple[str, int] | None = None  # (separator, column index)
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        for separator in _SEPARATORS:
            cells = body.split(separator)
            if len(cells) < 2:
                continue
            named = [i for i, c in enumerate(cells) if header.fullmatch(c.strip().strip("\"'"))]
            if named:
                found = (separator, named[0])
                break
            if found is not None and found[0] == separator and len(cells) > found[1]:
                start = offset + sum(len(c) + 1 for c in cells[: found[1]])
                cell = cells[found[1]]
                inner = cell.strip().strip("\"'")
                if inner:
                    at = start + cell.index(inner)
                    yield at, at + len(inner)
                break
        offset += len(line)
