"""PII benchmark: precision and recall of ``awe.ai.pii.scan`` on a labelled corpus.

    python bench/pii.py [--seed N] [--errors 25] [--json]

The corpus (tests/support/pii_corpus.py) is 200 invented texts: logs, tickets, e-mails, chats,
configs, CSV, JSON, stack traces, forms and invoices in English, German, French, Spanish and
Korean, with gold spans of the nine types and hard negatives (versions, ids with a year,
user-only URLs, SSH remotes, retina file names, placeholders, variable references…). Each
text is scanned with its own phone regions; a finding counts when its type is the gold one and
it overlaps the gold span by half the longer of the two. Targets: P >= 0.95 and R >= 0.90 per
type and overall. Prints figures, the hard negatives hit, the most frequent error patterns and
the time adversarial inputs take against prose (a pattern that backtracks shows as a ratio);
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, from a checkout

from tests.support import pii_corpus, pii_score

from awe.ai.pii import TYPES, scan

TARGET_PRECISION = 0.95
TARGET_RECALL = 0.90


def verdict(counts: pii_score.Counts) -> str:
    """Which targets a type (or the total) meets."""
    p_ok = counts.precision >= TARGET_PRECISION
    r_ok = counts.recall >= TARGET_RECALL
    if p_ok and r_ok:
        return "met"
    return (
        ", ".join(part for part, ok in (("P below", p_ok), ("R below", r_ok)) if not ok) + " target"
    )


def adversarial() -> None:
    """Seconds per 100 KB of inputs that make careless patterns backtrack, against ordinary
    prose of the same size (the ratio is what matters on a shared machine)."""
    size = 100_000
    inputs = {
        "prose": ("The invoice was sent on time and the customer paid it. " * 2000)[:size],
        "token-token-…": ("token-" * (size // 6))[:size],
        "password repeated": ("password_" * (size // 9))[:size],
        "base64 blob": ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=" * (size // 36))[:size],
        "build build … (one CSV cell)": "a," + ("build " * (size // 6))[:size] + "!",
        "digits and dots": ("1.2.3.4.5.6.7.8.9." * (size // 18))[:size],
        "many e-mails": ("x@y.co " * (size // 7))[:size],
    }
    base = None
    print("\nadversarial inputs (100 KB each)")
    for name, text in inputs.items():
        started = time.perf_counter()
        scan(text)
        seconds = time.perf_counter() - started
        base = base or seconds
        print(f"  {name:32} {seconds:6.2f} s   x{seconds / base:5.1f} of prose")


def main() -> None:
    """Generate, scan, score and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=pii_corpus.SEED)
    parser.add_argument("--errors", type=int, default=25, help="error patterns to list")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    texts = pii_corpus.corpus(args.seed)
    started = time.perf_counter()
    findings = {t["id"]: scan(t["text"], phone_regions=tuple(t["regions"])) for t in texts}
    elapsed = time.perf_counter() - started
    result = pii_score.score(texts, findings)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return

    chars = sum(len(t["text"]) for t in texts)
    langs = sorted({t["lang"] for t in texts})
    print(
        f"{len(texts)} texts ({', '.join(langs)}), {chars:,} characters, "
        f"{result.micro.tp + result.micro.fn} gold spans; scanned in {elapsed:.2f} s"
    )
    print(f"targets: P >= {TARGET_PRECISION}, R >= {TARGET_RECALL}\n")
    table = pii_score.format_table(result, order=TYPES).splitlines()
    names = [*(t for t in TYPES if t in result.per_type), "micro"]
    print(f"{table[0]}  target")
    rows = iter(names)
    for line in table[1:]:
        if line.startswith("-"):
            print(line + "-" * 8)
            continue
        name = next(rows)
        counts = result.micro if name == "micro" else result.per_type[name]
        print(f"{line}  {verdict(counts)}")

    print("\nhard negatives hit by a false positive (hits / in corpus)")
    for kind in pii_corpus.NEGATIVE_KINDS:
        print(f"  {kind:<20} {result.negative_hits[kind]:>3} / {result.negative_totals[kind]}")

    print(f"\ntop {args.errors} error patterns (count, type, FP/miss, context + shape; example)")
    for n, (kind, which, pattern), example in pii_score.error_patterns(result, args.errors):
        print(f"  {n:>3}  {kind:<15} {which:<4} {pattern[:34]:<34} {example.snippet}")
    adversarial()


if __name__ == "__main__":
    main()
