"""Login throttling: failed attempts counted per account and per address, lockouts, in the
database so every API process enforces them.

An attempt is counted under its account and its address *before* its password is checked, with
one atomic upsert each: parallel guesses each take their own numbers, so no more than the limit
of them are ever checked in a window, and two first attempts at once never collide. A successful
login starts the account afresh and gives the address its number back, and an attempt refused
unchecked gives its numbers back too, so a key counts its failures (and the attempts still in
flight) only: an office's many successful logins do not lock it. A key that is locked is refused
before anything is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, case, delete, select, update

from awe.core.config import Settings
from awe.storage.auth_models import AuthThrottle
from awe.storage.database import dialect_insert


@dataclass(frozen=True)
class Attempt:
    """The number an attempt took under one key, and any lockout in force."""

    key: str
    number: int
    limit: int
    locked_until: datetime | None
    #: The window it was counted in (a number given back counts only in that window).
    window: datetime

    def refused(self, now: datetime) -> bool:
        """Locked out, or past the limit of attempts in this window."""
        locked = self.locked_until is not None and self.locked_until > now
        return locked or self.number > self.limit


def keys(email: str, ip: str | None) -> list[str]:
    """The keys an attempt counts under: the account, and the address it came from."""
    return [f"account:{email}"] + ([f"ip:{ip}"] if ip else [])


def _limit(settings: Settings, key: str) -> int:
    if key.startswith("account:"):
        return settings.login_max_failures
    return settings.login_max_failures_per_ip


def locked_until(conn: Connection, keys: list[str], now: datetime) -> datetime | None:
    """Until when any of ``keys`` is locked out (None when none is)."""
    rows = conn.execute(
        select(AuthThrottle.locked_until).where(
            AuthThrottle.key.in_(keys), AuthThrottle.locked_until > now
        )
    ).scalars()
    return max((r for r in rows if r is not None), default=None)


def reserve(conn: Connection, settings: Settings, key: str, now: datetime) -> Attempt:
    """Count one more attempt (or failure) under ``key`` (a new window when the old one ended)."""
    window_start = now - timedelta(seconds=settings.login_window_seconds)
    expired = AuthThrottle.window_started_at < window_start
    statement = dialect_insert(conn)(AuthThrottle).values(
        key=key, failures=1, window_started_at=now, locked_until=None
    )
    upsert = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "failures": case((expired, 1), else_=AuthThrottle.failures + 1),
            "window_started_at": case((expired, now), else_=AuthThrottle.window_started_at),
        },
    ).returning(AuthThrottle.failures, AuthThrottle.locked_until, AuthThrottle.window_started_at)
    row = conn.execute(upsert).one()
    limit = _limit(settings, key)
    return Attempt(key, int(row.failures), limit, row.locked_until, row.window_started_at)


def lock_if_spent(conn: Connection, settings: Settings, attempt: Attempt, now: datetime) -> bool:
    """After a failed attempt: lock the key if this attempt used up its limit. True if it did."""
    if attempt.number < attempt.limit:
        return False
    until = now + timedelta(seconds=settings.login_lockout_seconds)
    conn.execute(
        update(AuthThrottle)
        .where(
            AuthThrottle.key == attempt.key,
            AuthThrottle.locked_until.is_(None) | (AuthThrottle.locked_until < now),
        )
        .values(locked_until=until)
    )
    return True


def succeeded(conn: Connection, attempts: list[Attempt]) -> None:
    """A successful login: the account starts afresh, and the address gets its number back (it
    counts failures only)."""
    account, *addresses = attempts
    conn.execute(delete(AuthThrottle).where(AuthThrottle.key == account.key))
    give_back(conn, addresses)


def give_back(conn: Connection, attempts: list[Attempt]) -> None:
    """These attempts were not failures (they succeeded, or were refused unchecked): their
    numbers go back, so a key counts its failures and the attempts still in flight only."""
    for attempt in attempts:
        conn.execute(
            update(AuthThrottle)
            .where(
                AuthThrottle.key == attempt.key,
                AuthThrottle.window_started_at == attempt.window,  # not a newer window's
                AuthThrottle.failures > 0,
            )
            .values(failures=AuthThrottle.failures - 1)
        )


def purge(conn: Connection, settings: Settings, now: datetime) -> None:
    """Forget windows that ended and hold no lockout (the table keeps only what still counts)."""
    cutoff = now - timedelta(seconds=settings.login_window_seconds)
    conn.execute(
        delete(AuthThrottle).where(
            AuthThrottle.window_started_at < cutoff,
            AuthThrottle.locked_until.is_(None) | (AuthThrottle.locked_until < now),
        )
    )
