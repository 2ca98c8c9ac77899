"""The erasure ledger file: a torn last line (a crash mid-append) does not swallow the next
entry; lines older than a backup by more than the margin are not re-applied, newer ones are."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from awe.core.clock import utcnow
from awe.ops import erasure_ledger
from awe.ops.erasure_ledger import Entry
from tests.conftest import make_settings


def test_a_torn_line_is_reported_and_the_next_entry_survives(tmp_path: Path) -> None:
    """After a half-written line, the next append starts on a line of its own: it reads back,
    and the torn one is reported as not a ledger line."""
    settings = make_settings(tmp_path)
    now = utcnow()
    erasure_ledger.append(settings, Entry("first", now, "delete", "t1", ("a@b.io",), None))
    path = settings.effective_erasure_ledger
    with path.open("a") as handle:
        handle.write('{"id": "torn", "at": "2026')
    erasure_ledger.append(settings, Entry("second", now, "delete", "t2", ("c@d.io",), "u1"))
    read = erasure_ledger.read(settings)
    assert [e.id for e in read.entries] == ["first", "second"]
    assert read.entries[1].user_id == "u1"
    assert len(read.unreadable) == 1
    assert "not a ledger line" in read.unreadable[0]


def test_what_a_restore_re_applies_by_time(tmp_path: Path) -> None:
    """For a backup taken at T: an erasure started two days before is not re-applied; one
    started an hour before (it may have run while the backup was taken) and one after are."""
    settings = make_settings(tmp_path)
    taken = utcnow()
    for name, shift in (("old", -48), ("during", -1), ("after", 1)):
        entry = Entry(name, taken + timedelta(hours=shift), "delete", name, ("x@y.io",), None)
        erasure_ledger.append(settings, entry)
    assert [e.id for e in erasure_ledger.due(erasure_ledger.read(settings), taken).entries] == [
        "during", "after"]  # fmt: skip


def test_an_erasure_run_again_counts_from_its_latest_line(tmp_path: Path) -> None:
    """Two lines of one request id: the later one is the entry (a restore of a backup taken
    between them re-applies it)."""
    settings = make_settings(tmp_path)
    taken = utcnow()
    erasure_ledger.append(settings, Entry("r", taken - timedelta(days=5), "delete", "t",
                                          ("a@b.io",), None))  # fmt: skip
    assert erasure_ledger.due(erasure_ledger.read(settings), taken).entries == []
    erasure_ledger.append(settings, Entry("r", taken + timedelta(hours=1), "delete", "t",
                                          ("a@b.io",), None))  # fmt: skip
    (entry,) = erasure_ledger.due(erasure_ledger.read(settings), taken).entries
    assert entry.at > taken


def test_resealing_keeps_the_lines_it_cannot_open(tmp_path: Path) -> None:
    """A ledger sealed anew keeps what opened (now under this key) and, as they were, the
    lines that did not."""
    settings = make_settings(tmp_path)
    erasure_ledger.append(settings, Entry("ok", utcnow(), "delete", "t", ("a@b.io",), None))
    path = settings.effective_erasure_ledger
    with path.open("a") as handle:
        handle.write("not json at all\n")
    erasure_ledger.reseal(settings, erasure_ledger.read(settings))
    read = erasure_ledger.read(settings)
    assert [e.id for e in read.entries] == ["ok"]
    assert "not json at all" in path.read_text()
