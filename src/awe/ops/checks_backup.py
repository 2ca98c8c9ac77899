"""Doctor check of backups: how old the newest backup that passed a restore test is (a
checksum is not a recovery test)."""

from __future__ import annotations

from datetime import datetime

from awe.ops import backup
from awe.ops.doctor import Context, Probe
from awe.ops.report import Outcome, failed, passed, warned

#: A verified backup older than this is stale.
STALE_DAYS = 7


def last_verified(ctx: Context) -> Outcome:
    """The newest backup with a passed restore test is recent."""
    folder = ctx.settings.effective_backup_dir
    found = backup.listed(folder)
    verified = [b for b in found if b.verified]
    fix = "awe backup create && awe backup verify latest --restore-test"
    if not verified:
        if found:
            return warned(f"{len(found)} backup(s) in {folder}, none restore-tested", fix)
        return warned(f"no backup yet in {folder}", fix)
    newest = verified[0]
    at = datetime.fromisoformat(newest.verified["verified_at"])  # type: ignore[index]
    age = (ctx.now - newest.created_at).total_seconds() / 86400
    data = {"backup": newest.name, "verified_at": at.isoformat(), "age_days": round(age, 1)}
    shown = f"newest verified backup {newest.name} is {age:.1f} day(s) old"
    if age > 4 * STALE_DAYS:
        return failed(shown, fix, **data)
    if age > STALE_DAYS:
        return warned(shown, fix, **data)
    return passed(shown, **data)


PROBES = [
    Probe("backups.last_verified", "backups", "a recent restore-tested backup", last_verified)
]
