"""After an erasure on SQLite: the bytes must leave the file, not only the rows.

Every connection has ``secure_delete=FAST`` (deleted and rewritten cells are zeroed inside their
page), and the WAL, which still holds pages as they were, is checkpointed and truncated. Freed
pages (FAST does not zero them) and free space written before secure_delete was on may still
hold old copies, so the file itself is read for the values afterwards; if one is there, the
file is rebuilt (VACUUM) and read again.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from awe.ops import dbstats
from awe.storage.database import Database

_CHUNK = 8 * 1024 * 1024
_OVERLAP = 4096


def settle_sqlite(db: Database, values: tuple[str, ...]) -> dict[str, Any]:
    """Checkpoint and truncate the WAL, read the file for ``values`` (VACUUM once if found);
    what was done and found. PostgreSQL: nothing to do here (see the receipt's kept rows)."""
    if not db.is_sqlite or not db.engine.url.database:
        return {"backend": db.dialect}
    path = Path(db.engine.url.database)
    needles, unchecked = _needles(values)
    secure, truncated = _checkpoint(db)
    held = _holds(path, needles)
    result: dict[str, Any] = {"backend": "sqlite", "secure_delete": secure, "vacuumed": False}
    if held:
        try:
            dbstats.vacuum(db)  # what awe db vacuum does: rebuild, then a checkpoint
            result["vacuumed"] = True
            _, truncated = _checkpoint(db)
            held = _holds(path, needles)
        except Exception as exc:  # noqa: BLE001 - the erasure is done: report, never fail it
            result["vacuum_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    result.update(wal_truncated=truncated, file_holds_value=held)
    if unchecked:
        # Bytes cannot tell whether a non-ASCII letter glues to them: not looked for in the file.
        result["values_not_checked_in_file"] = unchecked
    return result


def _checkpoint(db: Database) -> tuple[bool, bool]:
    """Truncate the WAL, outside any transaction, waiting a little for a reader's snapshot;
    whether secure_delete is on, and whether the WAL was truncated."""
    raw = db.engine.raw_connection()
    try:
        handle: Any = raw.driver_connection
        secure = bool(handle.execute("PRAGMA secure_delete").fetchone()[0])
        busy = 1
        for _ in range(20):
            busy = handle.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                break
            time.sleep(0.25)
    finally:
        raw.close()
    return secure, not busy


def _needles(values: tuple[str, ...]) -> tuple[re.Pattern[bytes], int]:
    """The values as bytes, in any ASCII case, where they stand on their own as the search
    sees it (an address not inside a longer one). Values with a non-ASCII letter at an edge
    are left out (and counted): bytes cannot tell whether a letter glues to them (Иван, Иванов)."""
    parts = []
    unchecked = 0
    for value in sorted(values, key=len, reverse=True):
        if not (value[:1].isascii() and value[-1:].isascii()):
            unchecked += 1
            continue
        address = "@" in value
        before = rb"(?<![A-Za-z0-9_.+%-])" if address else rb"(?<![A-Za-z0-9_-])"
        after = rb"(?![A-Za-z0-9_-]|\.[A-Za-z0-9_])" if address else rb"(?![A-Za-z0-9_]|-\w)"
        body = re.escape(value.encode())
        parts.append((before if re.match(r"\w", value) else b"") + body
                     + (after if re.search(r"\w$", value) else b""))  # fmt: skip
    return re.compile(b"|".join(parts) or rb"(?!)", re.IGNORECASE), unchecked


def _holds(path: Path, needles: re.Pattern[bytes]) -> bool:
    """Whether the file or its WAL holds one of the values, read in chunks that overlap."""
    for target in (path, path.with_name(path.name + "-wal")):
        if not target.exists():
            continue
        with target.open("rb") as handle:
            tail = b""
            while chunk := handle.read(_CHUNK):
                if needles.search(tail + chunk):
                    return True
                tail = chunk[-_OVERLAP:]
    return False
