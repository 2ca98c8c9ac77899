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
    """A real calendar date (either day-month order for numeric ones) with a year of birth in
    range (1900 to this year); a two-digit year is taken as is, since only a date with birth
    context gets here."""
    years = re.findall(r"\d{4}", value)
    if years and not 1900 <= int(years[0]) <= date.today().year:
        return False
    numbers = [int(n) for n in re.findall(r"\d+", value)]
    if len(numbers) != 3 or re.search(r"[^\W\d_]{3}", value.replace("년", "").replace("월", "")):
        return True  # a month name: the day is checked by the pattern's range
    if len(str(numbers[0])) == 4 or re.match(r"\d{4}", value):  # year first
        year, month, day = numbers
        return _exists(year, month, day)
    a, b, year = numbers
    year = year if year >= 100 else 1900 + year
    return _exists(year, b, a) or _exists(year, a, b)


def _exists(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def dates_of_birth(text: str) -> Iterator[Span]:
    """Dates with birth context before them, or in a table column headed by a birth word."""
    seen: set[Span] = set()
    for match in _DATE.finditer(text):
        if not _plausible(match.group()):
            continue
        # On the date's own line: a header above belongs to the table rule below.
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = text[max(line_start, match.start() - CONTEXT_CHARS) : match.start()]
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
    in a table delimited by commas, semicolons, tabs or bars. A header is the first line of a
    block whose cells are all short labels; the table ends at a blank line or a row with
    another number of cells. Quoted cells may hold the separator."""
    offset = 0
    found: tuple[str, int, int] | None = None  # (separator, column, cells per row)
    first = True  # the first line of a block
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if not body.strip():
            found, first = None, True
        elif found is not None:
            cells = _cells(body, found[0])
            if len(cells) != found[2]:
                found = None
            else:
                start, end = cells[found[1]]
                inner = body[start:end].strip().strip("\"'")
                if inner:
                    at = offset + start + body[start:end].index(inner)
                    yield at, at + len(inner)
        if first and body.strip():
            first = False
            for separator in _SEPARATORS:
                cells = _cells(body, separator)
                labels = [body[a:b].strip().strip("\"'") for a, b in cells]
                if len(cells) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
                    continue
                named = [i for i, label in enumerate(labels) if header.fullmatch(label)]
                if named:
                    found = (separator, named[0], len(cells))
                break
        offset += len(line)


#: What a header cell looks like: a short label, not a sentence.
_LABEL = re.compile(r"[^\W\d][\w .#/()-]{0,39}(?<![.])", re.UNICODE)


def _cells(line: str, separator: str) -> list[Span]:
    """(start, end) of each cell of a delimited line, a separator inside double quotes kept."""
    cells: list[Span] = []
    start, quoted = 0, False
    for at, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            cells.append((start, at))
            start = at + 1
    cells.append((start, len(line)))
    return cells
