"""The queue's SQL: claim, heartbeat, the stale-proof completion guard, and finding lost leases.

A step row is the queue item. These statements are the heart of awe; each is written out by
hand, and each clause says why it is there. They run inside the caller's transaction (on SQLite
that transaction began with BEGIN IMMEDIATE, so a claim is atomic across processes; on
PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass over each other's rows).

Every claim gets a fresh lease token; heartbeat, completion, failure and release name it, so a
worker can only ever act on the very claim it made. On PostgreSQL, lease times are the
database's clock (``clock_timestamp()``), not the worker's: a worker whose clock runs ahead
cannot take a live lease, one whose clock lags cannot keep a dead one. (SQLite is one machine:
one clock.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, text

from awe.core import metrics
from awe.storage.engine_models import Step
from awe.storage.types import UTCDateTime

_TS = UTCDateTime()
# The steps table: its sealed columns' types (each seals for its own column).
_STEPS = Step.__table__

# Columns a worker needs to execute a claimed step; the run's trust and project ride along.
_CLAIMED_COLUMNS = (
    "id, run_id, step_key, kind, attempt, tries, max_attempts, input, definition, queue,"
    " lease_expires_at, lease_token, ref_nonce, run_after,"
    " (SELECT trusted FROM runs WHERE runs.id = steps.run_id) AS trusted,"
    " (SELECT project_id FROM runs WHERE runs.id = steps.run_id) AS project_id,"
    " (SELECT trace_id FROM runs WHERE runs.id = steps.run_id) AS trace_id"
)

# What makes a step claimable, shared by the claim and the idle probe (which must agree, or idle
# workers would keep claiming what they can never take).
_READY = """
           status = 'queued'
           AND queue IN :queues
           AND run_after <= :now                   -- retries wait out their backoff here
           AND NOT cancel_requested                -- never start what is being cancelled
           AND NOT EXISTS (SELECT 1 FROM runs      -- nor a step of a cancelled run
                            WHERE runs.id = steps.run_id AND runs.status = 'cancelled')
"""

_CLAIM = """
UPDATE steps
   SET status = 'running',
       lease_owner = :owner,                       -- who holds it (shown to operators)
       lease_token = {token},                      -- this claim, and no other, may finish it
       lease_expires_at = {expires},               -- reaped back to 'queued' after this
       attempt = attempt + 1,                      -- persisted: a crash loses no count
       tries = tries + 1,                          -- counted against max_attempts
       started_at = COALESCE(started_at, :now)
 WHERE id IN (
        SELECT id FROM steps
         WHERE {ready}
         ORDER BY priority DESC, run_after, id     -- most urgent first, then oldest ready
         LIMIT :limit
         {lock}
       )
RETURNING {columns}
"""

# PostgreSQL: rows another claimer has locked are skipped, not waited for.
_PG_LOCK = "FOR UPDATE SKIP LOCKED"
# A token per claimed row, made by the database in the claim itself.
_TOKEN = {"postgresql": "md5(random()::text || clock_timestamp()::text || id)",
          "sqlite": "lower(hex(randomblob(16)))"}  # fmt: skip
# When a lease taken (or renewed) now ends: the database's clock on PostgreSQL.
# clock_timestamp(), not now(): now() is when the transaction began, and a heartbeat that
# waited for a row lock longer than the lease would set an expiry already past.
_EXPIRES = {
    "postgresql": "clock_timestamp() + :lease_seconds * interval '1 second'",
    "sqlite": ":expires",
}
# "Now" for lease comparisons.
_NOW = {"postgresql": "clock_timestamp()", "sqlite": ":now"}


def _clock(conn: Connection, table: dict[str, str]) -> str:
    return table["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]


@dataclass(frozen=True)
class ClaimedStep:
    """A step this worker now holds the lease of."""

    id: str
    run_id: str
    step_key: str
    kind: str
    #: The attempt's number: one more on every claim, never reused.
    attempt: int
    #: Attempts counted against max_attempts (since the step was last requeued).
    tries: int
    max_attempts: int
    input: Any
    definition: dict[str, Any]
    queue: str
    lease_expires_at: datetime
    #: Names this claim: what heartbeat, completion, failure and release must present.
    lease_token: str
    #: The run may use privileged kinds (see engine/permissions.py).
    trusted: bool
    project_id: str | None
    #: The nonce of the secret references in ``input`` (None: it has none).
    ref_nonce: str | None = None
    #: When it became ready (its retry's backoff over, for a retry): the queue wait starts.
    ready_at: datetime | None = None
    #: The run's trace id (its step attempts are spans of that trace).
    trace_id: str | None = None


def _claimed(row: Any) -> ClaimedStep:
    return ClaimedStep(
        id=row.id,
        run_id=row.run_id,
        step_key=row.step_key,
        kind=row.kind,
        attempt=row.attempt,
        tries=row.tries,
        max_attempts=row.max_attempts,
        input=row.input,
        definition=row.definition,
        queue=row.queue,
        lease_expires_at=row.lease_expires_at,
        lease_token=row.lease_token,
        trusted=bool(row.trusted),
        project_id=row.project_id,
        ref_nonce=row.ref_nonce,
        ready_at=row.run_after,
        trace_id=row.trace_id,
    )


def claim(
    conn: Connection,
    *,
    owner: str,
    queues: list[str],
    limit: int,
    now: datetime,
    lease_seconds: float,
    limited: frozenset[str] | None = None,
) -> list[ClaimedStep]:
    """Lease up to ``limit`` ready steps of ``queues``, honouring each queue's limits.

    ``limited``: the queues known to have limits (:func:`limited_queues`, which a worker reads
    on every heartbeat); when none of ``queues`` is among them the queues' rows are not read
    at all. None: read them now.
    """
    if limit <= 0 or not queues:
        return []
    skip = limited is not None and limited.isdisjoint(queues)
    limits = {} if skip else _queue_limits(conn, queues)
    claimed: list[ClaimedStep] = []
    free_queues = [q for q in queues if q not in limits]
    for queue_name, row in limits.items():
        want = limit - len(claimed)
        allowed, binding = _allowance(conn, row, now=now, want=want)
        got: list[ClaimedStep] = []
        if allowed > 0:
            got = _claim_from(conn, owner, [queue_name], allowed, now, lease_seconds)
            _spend_tokens(conn, row, len(got), now)
            claimed.extend(got)
        if binding and len(got) == allowed and has_ready(conn, queues=[queue_name], now=now):
            metrics.after_commit(conn, metrics.CLAIMS_LIMITED.labels(queue_name, binding).inc)
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
    sql = _CLAIM.format(
        ready=_READY,
        lock=lock,
        columns=_CLAIMED_COLUMNS,
        token=_clock(conn, _TOKEN),
        expires=_clock(conn, _EXPIRES),
    )
    statement = text(sql).bindparams(bindparam("queues", expanding=True), *_time_params(sql))
    rows = conn.execute(
        statement.columns(
            lease_expires_at=_TS,
            run_after=_TS,
            input=_STEPS.c.input.type,
            definition=_STEPS.c.definition.type,
        ),
        {
            "owner": owner,
            "queues": queues,
            "limit": limit,
            "now": now,
            **_lease_values(sql, now, lease_seconds),
        },
    )
    return sorted((_claimed(r) for r in rows), key=lambda s: s.id)


def _time_params(sql: str) -> list[Any]:
    """Bind parameters of ``sql`` that are timestamps."""
    return [bindparam(name, type_=_TS) for name in ("now", "expires") if f":{name}" in sql]


def _lease_values(sql: str, now: datetime, lease_seconds: float) -> dict[str, Any]:
    """The lease's end as the statement wants it: a timestamp, or seconds for the database."""
    values: dict[str, Any] = {}
    if ":expires" in sql:
        values["expires"] = now + timedelta(seconds=lease_seconds)
    if ":lease_seconds" in sql:
        values["lease_seconds"] = lease_seconds
    return values


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


def limited_queues(conn: Connection, queues: list[str]) -> frozenset[str]:
    """Which of ``queues`` have a concurrency or rate limit (read, not locked)."""
    statement = text(
        "SELECT name FROM queues WHERE name IN :queues"
        " AND (concurrency_limit IS NOT NULL OR rate_per_second IS NOT NULL)"
    ).bindparams(bindparam("queues", expanding=True))
    return frozenset(conn.execute(statement, {"queues": queues}).scalars())


def _allowance(conn: Connection, row: Any, *, now: datetime, want: int) -> tuple[int, str | None]:
    """How many steps of the queue may be claimed now, and which limit (concurrency or rate)
    held the number below ``want`` (None: neither did)."""
    allowed, binding = want, None
    if row.concurrency_limit is not None:
        # The slots are the live leases: a dead worker's slot comes back when its lease expires.
        sql = (
            "SELECT COUNT(*) FROM steps WHERE queue = :queue AND status = 'running'"
            f" AND lease_expires_at > {_clock(conn, _NOW)}"
        )
        busy = conn.execute(
            text(sql).bindparams(*_time_params(sql)), {"queue": row.name, "now": now}
        ).scalar_one()
        if row.concurrency_limit - int(busy) < allowed:
            allowed, binding = row.concurrency_limit - int(busy), "concurrency"
    if row.rate_per_second is not None:
        tokens = math.floor(_tokens_now(row, now))
        if tokens < allowed:
            allowed, binding = tokens, "rate"
    return max(0, allowed), binding


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
    statement = text(f"SELECT 1 FROM steps WHERE {_READY} LIMIT 1").bindparams(
        bindparam("queues", expanding=True), bindparam("now", type_=_TS)
    )
    return conn.execute(statement, {"queues": queues, "now": now}).first() is not None


def heartbeat(
    conn: Connection, *, tokens: list[str], now: datetime, lease_seconds: float
) -> dict[str, bool]:
    """Extend the leases of these claims; returns {lease token: cancel requested} for the leases
    still held.

    A token missing from the result was taken away (reaped, cancelled, or completed elsewhere):
    the worker must stop reporting on it. On PostgreSQL a step whose row another transaction
    holds (its result being recorded) is passed over rather than waited for, so the leases of
    the others are renewed on time; it counts as held, and is renewed at the next beat.
    """
    if not tokens:
        return {}
    postgres = conn.dialect.name == "postgresql"
    mine = (
        "id IN (SELECT id FROM steps WHERE lease_token IN :tokens AND status = 'running'"
        " FOR UPDATE SKIP LOCKED)"
        if postgres
        else "lease_token IN :tokens AND status = 'running'"  # only the claims we made, held
    )
    sql = (
        f"UPDATE steps SET lease_expires_at = {_clock(conn, _EXPIRES)} WHERE {mine}"
        " RETURNING lease_token, cancel_requested OR EXISTS ("  # stop it: cancelled, or its run
        "   SELECT 1 FROM runs WHERE runs.id = steps.run_id AND runs.status = 'cancelled'"
        " ) AS cancel_requested"
    )
    statement = text(sql).bindparams(bindparam("tokens", expanding=True), *_time_params(sql))
    rows = conn.execute(statement, {"tokens": tokens, **_lease_values(sql, now, lease_seconds)})
    held = {row.lease_token: bool(row.cancel_requested) for row in rows}
    passed_over = [token for token in tokens if token not in held]
    if postgres and passed_over:
        busy = text(
            "SELECT lease_token, cancel_requested OR EXISTS ("
            "   SELECT 1 FROM runs WHERE runs.id = steps.run_id AND runs.status = 'cancelled'"
            " ) AS cancel_requested"
            " FROM steps WHERE lease_token IN :tokens AND status = 'running'"
        ).bindparams(bindparam("tokens", expanding=True))
        for row in conn.execute(busy, {"tokens": passed_over}):
            held[row.lease_token] = bool(row.cancel_requested)
    return held


def guard_lease(conn: Connection, *, step_id: str, token: str) -> bool:
    """Lock the step for finishing, only if the claim ``token`` still holds its lease.

    This is what stops a stale worker (its lease expired and another worker took the step over)
    from overwriting the newer attempt's result.
    """
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    row = conn.execute(
        text(
            "SELECT id FROM steps WHERE id = :id AND lease_token = :token"
            " AND status = 'running'" + lock
        ),
        {"id": step_id, "token": token},
    ).first()
    return row is not None


def complete_step(
    conn: Connection, *, step_id: str, token: str, output: Any, now: datetime
) -> str | None:
    """Store a step's output and mark it succeeded; its key, or None if the lease was lost.

    The lease guard is part of the statement: a stale worker, whose lease expired and whose step
    another worker took over (a newer claim, a new token), matches no row and cannot overwrite
    anything.
    """
    statement = text(
        "UPDATE steps"
        "   SET status = 'succeeded', output = :output, finished_at = :now,"
        "       lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL,"
        "       error_category = NULL, error_message = NULL"
        " WHERE id = :id"
        "   AND lease_token = :token"  # still the claim we made
        "   AND status = 'running'"  # not cancelled or reaped meanwhile
        " RETURNING step_key"
    ).bindparams(bindparam("output", type_=_STEPS.c.output.type), bindparam("now", type_=_TS))
    row = conn.execute(
        statement, {"output": output, "now": now, "id": step_id, "token": token}
    ).first()
    return None if row is None else str(row.step_key)


def expired_leases(conn: Connection, *, now: datetime, limit: int = 100) -> list[str]:
    """Ids of running steps whose lease has expired (their worker died or stalled).

    Not locked here: the reaper re-checks each under the run's lock (:func:`lease_expired`),
    the same lock order as completion, so reaping and completing never deadlock.
    """
    return [step_id for step_id, _ in expired_lease_claims(conn, now=now, limit=limit)]


def expired_lease_claims(
    conn: Connection, *, now: datetime, limit: int = 100
) -> list[tuple[str, str]]:
    """(step id, lease token) of the expired leases, as :func:`expired_leases`."""
    sql = (
        "SELECT id, lease_token FROM steps WHERE status = 'running'"
        f" AND lease_expires_at < {_clock(conn, _NOW)} ORDER BY lease_expires_at LIMIT :limit"
    )
    rows = conn.execute(text(sql).bindparams(*_time_params(sql)), {"now": now, "limit": limit})
    return [(row.id, row.lease_token) for row in rows]


def lease_expired(conn: Connection, *, step_id: str, now: datetime) -> bool:
    """Whether the step is running on an expired lease right now (by the database's clock)."""
    sql = (
        "SELECT 1 FROM steps WHERE id = :id AND status = 'running'"
        f" AND lease_expires_at < {_clock(conn, _NOW)}"
    )
    found = conn.execute(text(sql).bindparams(*_time_params(sql)), {"id": step_id, "now": now})
    return found.first() is not None
