"""Scoring PII findings against a labelled corpus (see pii_corpus.py): strict, per type.

A finding matches a gold span when the type is the same and the two overlap by at least half of
the longer one (``overlap >= 0.5 * max(len(gold), len(found))``); each gold span matches at most
one finding. Unmatched findings are false positives, unmatched gold spans are misses.
``score()`` gives per-type and micro precision/recall/F1 with both error lists (text id,
value, snippet), and counts the false positives that landed on each kind of hard negative;
``format_table()`` prints it compactly; ``error_patterns()`` groups errors by their shape.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SNIPPET_CHARS = 24

#: The per-type table of the last quality test of this run (printed in the terminal summary).
REPORT: list[str] = []


@dataclass(frozen=True)
class Error:
    """A false positive ("FP") or a miss ("miss") of one type in one text."""

    text_id: str
    type: str
    kind: str
    start: int
    end: int
    value: str
    snippet: str
    before: str


@dataclass
class Counts:
    """True positives, false positives and misses of one type (or of all)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1.0 when nothing was found."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + misses); 1.0 when there was nothing to find."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """The counts and the three rates, rounded."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


@dataclass
class Score:
    """Per-type counts, the micro total, the errors and the hard negatives hit."""

    per_type: dict[str, Counts]
    micro: Counts
    false_positives: list[Error] = field(default_factory=list)
    misses: list[Error] = field(default_factory=list)
    negative_hits: Counter[str] = field(default_factory=Counter)
    negative_totals: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (counts and rates; errors as dicts)."""
        return {
            "per_type": {t: c.as_dict() for t, c in self.per_type.items()},
            "micro": self.micro.as_dict(),
            "negative_hits": dict(self.negative_hits),
            "negative_totals": dict(self.negative_totals),
            "false_positives": [e.__dict__ for e in self.false_positives],
            "misses": [e.__dict__ for e in self.misses],
        }


def _span(item: Any) -> tuple[str, int, int]:
    """(type, start, end) of a dict or of an object with those attributes (a Finding)."""
    if isinstance(item, Mapping):
        return item["type"], item["start"], item["end"]
    return item.type, item.start, item.end


def overlaps_enough(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two spans overlap by at least half the longer one."""
    overlap = min(a[1], b[1]) - max(a[0], b[0])
    return overlap > 0 and overlap >= 0.5 * max(a[1] - a[0], b[1] - b[0])


def snippet(text: str, start: int, end: int, chars: int = SNIPPET_CHARS) -> str:
    """The span in brackets with some context either side, on one line."""
    left = text[max(0, start - chars) : start]
    right = text[end : end + chars]
    return re.sub(r"\s+", " ", f"{left}[{text[start:end]}]{right}")


def score(texts: Iterable[Mapping[str, Any]], findings: Mapping[str, Iterable[Any]]) -> Score:
    """Score ``findings`` (text id → findings) against the gold spans of ``texts``."""
    per_type: dict[str, Counts] = {}
    result = Score(per_type=per_type, micro=Counts())
    for item in texts:
        text, text_id = item["text"], item["id"]
        gold = [_span(s) for s in item["spans"]]
        found = sorted(_span(f) for f in findings.get(text_id, ()))
        used: set[int] = set()
        for kind, start, end in gold:
            best, best_overlap = None, 0
            for i, (f_kind, f_start, f_end) in enumerate(found):
                if (
                    i in used
                    or f_kind != kind
                    or not overlaps_enough((start, end), (f_start, f_end))
                ):
                    continue
                overlap = min(end, f_end) - max(start, f_start)
                if overlap > best_overlap:
                    best, best_overlap = i, overlap
            counts = per_type.setdefault(kind, Counts())
            if best is None:
                counts.fn += 1
                result.misses.append(_error(text_id, text, kind, "miss", start, end))
            else:
                counts.tp += 1
                used.add(best)
        negatives = [(n["kind"], n["start"], n["end"]) for n in item.get("negatives", ())]
        result.negative_totals.update(n[0] for n in negatives)
        for i, (kind, start, end) in enumerate(found):
            if i in used:
                continue
            per_type.setdefault(kind, Counts()).fp += 1
            result.false_positives.append(_error(text_id, text, kind, "FP", start, end))
            for neg_kind in {n for n, s, e in negatives if start < e and s < end}:
                result.negative_hits[neg_kind] += 1
    for counts in per_type.values():
        result.micro.tp += counts.tp
        result.micro.fp += counts.fp
        result.micro.fn += counts.fn
    return result


def _error(text_id: str, text: str, kind: str, which: str, start: int, end: int) -> Error:
    """An Error with its value, snippet and the word before it."""
    before = re.findall(r"[^\W\d_][\w.-]*|[^\w\s]", text[max(0, start - 30) : start])
    return Error(
        text_id,
        kind,
        which,
        start,
        end,
        text[start:end],
        snippet(text, start, end),
        before[-1].lower() if before else "",
    )


def shape(value: str) -> str:
    """A value's shape: digits 9, letters a/A (others x), runs of one class collapsed."""
    out = []
    for ch in value:
        if ch.isdigit():
            c = "9"
        elif ch.isascii() and ch.isalpha():
            c = "A" if ch.isupper() else "a"
        elif ch.isalpha():
            c = "x"
        else:
            c = ch
        if not out or out[-1] != c or not c.isalnum():
            out.append(c)
    return "".join(out)


def error_patterns(result: Score, top: int = 25) -> list[tuple[int, tuple[str, str, str], Error]]:
    """The ``top`` most frequent (type, FP/miss, context word + value shape) with an example."""
    groups: Counter[tuple[str, str, str]] = Counter()
    example: dict[tuple[str, str, str], Error] = {}
    for error in [*result.false_positives, *result.misses]:
        key = (error.type, error.kind, f"{error.before} {shape(error.value)}".strip())
        groups[key] += 1
        example.setdefault(key, error)
    return [(n, key, example[key]) for key, n in groups.most_common(top)]


def format_table(result: Score, order: Iterable[str] = ()) -> str:
    """Per-type and micro counts and rates as a fixed-width table."""
    kinds = [k for k in order if k in result.per_type] + sorted(
        k for k in result.per_type if k not in set(order)
    )
    head = f"{'type':<16} {'gold':>5} {'found':>5} {'tp':>5} {'fp':>4} {'miss':>4}"
    lines = [f"{head} {'P':>6} {'R':>6} {'F1':>6}"]
    rows = [(k, result.per_type[k]) for k in kinds] + [("micro", result.micro)]
    for name, c in rows:
        if name == "micro":
            lines.append("-" * len(lines[0]))
        lines.append(
            f"{name:<16} {c.tp + c.fn:>5} {c.tp + c.fp:>5} {c.tp:>5} {c.fp:>4} {c.fn:>4}"
            f" {c.precision:>6.3f} {c.recall:>6.3f} {c.f1:>6.3f}"
        )
    return "\n".join(lines)
