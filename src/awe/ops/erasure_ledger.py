"""The erasure ledger: one line per erasure, kept outside the database so that a restore (which
replaces the database) can re-apply the erasures made after its backup was taken.

A line holds the request id, when, the mode, the subject's keyed hash, and the subject itself
sealed with the instance key (re-applying needs the values to look for; nothing in the file is
readable without the key). The file is 0600, appended under an exclusive lock, one JSON object
per line; a torn last line (a crash mid-append) is skipped, never fatal.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from awe.core.config import Settings
from awe.core.crypto import SealBroken, instance_key

#: The purpose sealed subjects are bound to (a value sealed for another purpose does not open).
PURPOSE = "erasure-ledger"


@dataclass(frozen=True)
class Entry:
    """One erasure as the ledger remembers it."""

    id: str
    at: datetime
    mode: str
    subject: str
    #: The values looked for, and the account's id (None when the subject had none).
    values: tuple[str, ...]
    user_id: str | None
    #: How the subject was named: "email", "user" or "value".
    kind: str = "value"


def _line(settings: Settings, entry: Entry) -> str:
    sealed = instance_key(settings).seal(
        json.dumps(
            {"values": list(entry.values), "user_id": entry.user_id, "kind": entry.kind}
        ).encode(),
        purpose=PURPOSE,
    )
    return json.dumps(
        {
            "id": entry.id,
            "at": entry.at.isoformat(),
            "mode": entry.mode,
            "subject": entry.subject,
            "sealed": sealed,
        }
    )


def append(settings: Settings, entry: Entry) -> Path:
    """Add ``entry`` to the ledger (created 0600 in a 0700 folder when missing); its path. An
    erasure run again appends its entry again, with the later time (the later one counts)."""
    path = settings.effective_erasure_ledger
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = _line(settings, entry)
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        size = os.fstat(descriptor).st_size
        # A torn last line (a crash mid-append) must not swallow this one.
        torn = size > 0 and os.pread(descriptor, 1, size - 1) != b"\n"
        os.write(descriptor, (("\n" if torn else "") + line + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)  # closing releases the lock
    return path


@dataclass(frozen=True)
class Read:
    """The ledger's entries, and the lines that could not be used (with why)."""

    entries: list[Entry]
    unreadable: list[str]
    #: The unreadable lines themselves (kept as they are when the ledger is sealed anew).
    unread_lines: list[str] = field(default_factory=list)


#: How long before a backup an erasure may have started and still owe it a re-apply (one that
#: ran while the backup was taken; re-applying one that finished before is harmless).
MARGIN = timedelta(days=1)


def read(settings: Settings) -> Read:
    """The entries (each request's latest line), oldest first. A line that does not parse or
    whose subject does not open with this instance key is reported, not raised."""
    path = settings.effective_erasure_ledger
    if not path.is_file():
        return Read([], [])
    key = instance_key(settings)
    entries: list[Entry] = []
    unreadable: list[str] = []
    unread: list[str] = []
    with path.open("r", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        lines = handle.read().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw: dict[str, Any] = json.loads(line)
            at = datetime.fromisoformat(raw["at"])
            opened = json.loads(key.open(raw["sealed"], purpose=PURPOSE))
            entries.append(
                Entry(
                    id=str(raw["id"]),
                    at=at,
                    mode=str(raw["mode"]),
                    subject=str(raw["subject"]),
                    values=tuple(str(v) for v in opened["values"]),
                    user_id=opened.get("user_id"),
                    kind=str(opened.get("kind", "value")),
                )
            )
        except SealBroken:
            unread.append(line)
            unreadable.append(
                f"{path}:{number}: sealed with another instance key (erasure"
                f" {str(raw.get('id'))[:40]}): restore the key it was made with, or erase again"
            )
        except (ValueError, KeyError, TypeError) as exc:
            unread.append(line)
            unreadable.append(f"{path}:{number}: not a ledger line ({type(exc).__name__})")
    latest: dict[str, Entry] = {}
    for entry in entries:  # an erasure run again: its latest line
        if entry.id not in latest or entry.at >= latest[entry.id].at:
            latest[entry.id] = entry
    return Read(sorted(latest.values(), key=lambda e: e.at), unreadable, unread)


def due(read: Read, taken: datetime) -> Read:
    """What a restore of a backup taken at ``taken`` re-applies: the entries started later than
    :data:`MARGIN` before it."""
    return replace(read, entries=[e for e in read.entries if e.at > taken - MARGIN])


def reseal(settings: Settings, read: Read) -> None:
    """Write the ledger anew with what ``read`` opened sealed with the current instance key
    (after a restore put back another key, lines sealed with the old one would no longer
    open); lines it could not open are kept as they were."""
    text = "\n".join([*read.unread_lines, *(_line(settings, e) for e in read.entries)]) + "\n"
    # In place, under the appenders' lock (a rename would let an append waiting on the old
    # file's lock write into a file nobody reads again).
    descriptor = os.open(settings.effective_erasure_ledger, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        data = text.encode()
        os.pwrite(descriptor, data, 0)  # then cut: a crash between leaves old lines, not none
        os.ftruncate(descriptor, len(data))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
