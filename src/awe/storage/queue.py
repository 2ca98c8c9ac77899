"""The queue's SQL: claim, heartbeat, the stale-proof completion guard, and finding lost leases.

A step row is the queue item. These statements are the heart of awe; each is written out by
hand, and each clause says why it is there. They run inside the caller's transaction (on SQLite
that transaction began with BEGIN IMMEDIATE, so a claim is atomic across processes; on
PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass over each other's rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Connection, bindparam, text

from awe.storage.privacy import ScrubbedJSON
from awe.storage.types import UTCDateTime

_TS = UTCDateTime()

# Columns a worker needs to execute a claimed step.
_CLAIMED_COLUMNS = (
    "id, run_id, step_key, kind, attempt, max_attempts, input, definition, queue, lease_expires_at"
)

_CLAIM = """
UPDATE steps
   SET status = 'running',
       lease_owner = :owner,                       -- who may heartbeat and complete it
       lease_expires_at = :expires,                -- reaped back to 'queued' after this
       attempt = attempt + 1,                      -- persisted: a crash loses no count
       started_at = COALESCE(started_at, :now)
 WHERE id IN (
        SELECT id FROM steps
         WHERE status = 'queued'
           AND queue IN :queues
           AND run_after <= :now                   -- retries wait out their backoff here
         ORDER BY priority DESC, run_after, id     -- most urgent first, then oldest ready
         LIMIT :limit
         {lock}
       )
RETURNING {columns}
"""

# PostgreSQL: rows another claimer has locked are skipped, not waited for.
_PG_LOCK = "FOR UPDATE SKIP LOCKED"


@dataclass(frozen=True)
class ClaimedStep:
    """A step this worker now holds the lease of."""

    id: str
    run_id: str
    step_key: str
    kind: str
    attempt: int
    max_attempts: int
    input: Any
    definition: dict[str, Any]
    queue: str
    lease_expires_at: datetime


def _claimed(row: Any) -> ClaimedStep:
    return ClaimedStep(
        id=row.id,
        run_id=row.run_id,
        step_key=row.step_key,
        kind=row.kind,
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        input=row.input,
        definition=row.definition,
        queue=row.queue,
        lease_expires_at=row.lease_expires_at,
    )


def claim(
    conn: Connection,
    *,
    owner: str,
    queues: list[str],
    limit: int,
    now: datetime,
    lease_seconds: float,
) -> list[ClaimedStep]:
    """Lease up to ``limit`` ready steps of ``queues``, honouring each queue's limits."""
    if limit <= 0 or not queues:
        return []
    limits = _queue_limits(conn, queues)
    claimed: list[ClaimedStep] = []
    free_queues = [q for q in queues if q not in limits]
    for queue_name, row in limits.items():
        allowed = _allowance(conn, row, now=now, want=limit - len(claimed))
        if allowed > 0:
            got = _claim_from(conn, owner, [queue_name], allowed, now, lease_seconds)
            _spend_tokens(conn, row, len(got), now)
            claimed.extend(got)
    if free_queues and len(claimed) < limit:
        claimed.extend(
            _claim_from(conn, owner, free_queues, limit - len(claimed), now, lease_seconds)
        )
    return claimed


def _claim_from(
    conn: Connection,
    owner: str,
    queues: list[str],
    limit: int,
    now: datetime,
    lease_seconds: float,
) -> list[ClaimedStep]:
    lock = _PG_LOCK if conn.dialect.name == "postgresql" else ""
    statement = text(_CLAIM.format(lock=lock, columns=_CLAIMED_COLUMNS)).bindparams(
        bindparam("queues", expanding=True),
        bindparam("now", type_=_TS),
        bindparam("expires", type_=_TS),
    )
    rows = conn.execute(
        statement.columns(lease_expires_at=_TS, input=JSON(), definition=JSON()),
        {
            "owner": owner,
            "queues": queues,
            "limit": limit,
            "now": now,
            "expires": now + timedelta(seconds=lease_seconds),
        },
    )
    return sorted((_claimed(r) for r in rows), key=lambda s: s.id)


def _queue_limits(conn: Connection, queues: list[str]) -> dict[str, Any]:
    """The queues among ``queues`` that have a concurrency or rate limit, locked for this claim.

    Locking the queue row serialises claimers of a limited queue on PostgreSQL, so two workers
    counting free slots at once cannot both take the last one. (SQLite is serialised already.)
    """
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    statement = text(
        "SELECT name, concurrency_limit, rate_per_second, burst, tokens, tokens_at FROM queues"
        " WHERE name IN :queues"
        " AND (concurrency_limit IS NOT NULL OR rate_per_second IS NOT NULL)"
        " ORDER BY name" + lock
    ).bindparams(bindparam("queues", expanding=True))
    rows = conn.execute(statement.columns(tokens_at=_TS), {"queues": queues})
    return {row.name: row for row in rows}


def _allowance(conn: Connection, row: Any, *, now: datetime, want: int) -> int:
    allowed = want
    if row.concurrency_limit is not None:
        # The slots are the live leases: a dead worker's slot comes back when its lease expires.
        busy = conn.execute(
            text(
                "SELECT COUNT(*) FROM steps WHERE queue = :queue AND status = 'running'"
                " AND lease_expires_at > :now"
            ).bindparams(bindparam("now", type_=_TS)),
            {"queue": row.name, "now": now},
        ).scalar_one()
        allowed = min(allowed, row.concurrency_limit - int(busy))
    if row.rate_per_second is not None:
        allowed = min(allowed, math.floor(_tokens_now(row, now)))
    return max(0, allowed)


def _tokens_now(row: Any, now: datetime) -> float:
    """The token bucket refilled up to ``now`` (a new bucket starts full)."""
    if row.tokens_at is None:
        return float(row.burst)
    elapsed = max(0.0, (now - row.tokens_at).total_seconds())
    return float(min(row.burst, row.tokens + elapsed * row.rate_per_second))


def _spend_tokens(conn: Connection, row: Any, spent: int, now: datetime) -> None:
    if row.rate_per_second is None:
        return
    conn.execute(
        text("UPDATE queues SET tokens = :tokens, tokens_at = :now WHERE name = :name").bindparams(
            bindparam("now", type_=_TS)
        ),
        {"tokens": _tokens_now(row, now) - spent, "now": now, "name": row.name},
    )


def has_ready(conn: Connection, *, queues: list[str], now: datetime) -> bool:
    """A read-only probe: is any step of ``queues`` ready? Idle workers poll this, not claim."""
    statement = text(
        "SELECT 1 FROM steps WHERE status = 'queued' AND queue IN :queues AND run_after <= :now"
        " LIMIT 1"
    ).bindparams(bindparam("queues", expanding=True), bindparam("now", type_=_TS))
    return conn.execute(statement, {"queues": queues, "now": now}).first() is not None


def heartbeat(
    conn: Connection, *, owner: str, step_ids: list[str], now: datetime, lease_seconds: float
) -> dict[str, bool]:
    """Extend this worker's leases; returns {step id: cancel requested} for leases still held.

    A step missing from the result was taken away (reaped, cancelled, or completed elsewhere):
    the worker must stop reporting on it.
    """
    if not step_ids:
        return {}
    statement = text(
        "UPDATE steps SET lease_expires_at = :expires"
        " WHERE id IN :ids"
        "   AND lease_owner = :owner"  # only leases we still hold
        "   AND status = 'running'"
        " RETURNING id, cancel_requested"
    ).bindparams(bindparam("ids", expanding=True), bindparam("expires", type_=_TS))
    rows = conn.execute(
        statement,
        {"ids": step_ids, "owner": owner, "expires": now + timedelta(seconds=lease_seconds)},
    )
    return {row.id: bool(row.cancel_requested) for row in rows}


def guard_lease(conn: Connection, *, step_id: str, owner: str, attempt: int) -> bool:
    """Lock the step for finishing, only if ``owner`` still holds the lease of ``attempt``.

    This is what stops a stale worker (its lease expired and another worker took the step over)
    from overwriting the newer attempt's result.
    """
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    row = conn.execute(
        text(
            "SELECT id FROM steps WHERE id = :id AND lease_owner = :owner"
            " AND attempt = :attempt AND status = 'running'" + lock
        ),
        {"id": step_id, "owner": owner, "attempt": attempt},
    ).first()
    return row is not None


def complete_step(
    conn: Connection, *, step_id: str, owner: str, attempt: int, output: Any, now: datetime
) -> str | None:
    """Store a step's output and mark it succeeded; its key, or None if the lease was lost.

    The lease guard is part of the statement: a stale worker, whose lease expired and whose step
    another worker took over (a newer attempt), matches no row and cannot overwrite anything.
    """
    statement = text(
        "UPDATE steps"
        "   SET status = 'succeeded', output = :output, finished_at = :now,"
        "       lease_owner = NULL, lease_expires_at = NULL,"
        "       error_category = NULL, error_message = NULL"
        " WHERE id = :id"
        "   AND lease_owner = :owner"  # still ours
        "   AND attempt = :attempt"  # and still the attempt we ran
        "   AND status = 'running'"  # not cancelled or reaped meanwhile
        " RETURNING step_key"
    ).bindparams(bindparam("output", type_=ScrubbedJSON()), bindparam("now", type_=_TS))
    row = conn.execute(
        statement,
        {"output": output, "now": now, "id": step_id, "owner": owner, "attempt": attempt},
    ).first()
    return None if row is None else str(row.step_key)


def expired_leases(conn: Connection, *, now: datetime, limit: int = 100) -> list[str]:
    """Ids of running steps whose lease has expired (their worker died or stalled).

    Not locked here: the reaper re-checks each under the run's lock, the same lock order as
    completion, so reaping and completing never deadlock.
    """
    lock = ""
    rows = conn.execute(
        text(
            "SELECT id FROM steps WHERE status = 'running' AND lease_expires_at < :now"
            " ORDER BY lease_expires_at LIMIT :limit" + lock
        ).bindparams(bindparam("now", type_=_TS)),
        {"now": now, "limit": limit},
    )
    return [row.id for row in rows]
