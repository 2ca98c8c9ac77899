"""What this process has done, as Prometheus series: one registry per process.

Counters and histograms here count events as they happen in this process (a worker's step
attempts, a scheduler's fires, an LLM call), so they never go backwards when old rows are pruned;
Prometheus sums them across processes. Gauges of the engine's state (queue depth, dead letters)
are read from the database by the API instead (see :mod:`awe.api.observe`).

What happens inside a transaction is counted only once it commits: :func:`after_commit` keeps the
observation on the connection, and :class:`awe.storage.database.Database` runs it after COMMIT (a
transaction retried after an outage, or a savepoint rolled back, counts nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    start_http_server,
)
from prometheus_client.registry import Collector

from awe import __version__

#: Everything this process exposes on its own (a worker's ``--metrics-port``, and ``/metrics``).
REGISTRY = CollectorRegistry()
_AFTER_COMMIT = "awe.after_commit"

#: Seconds: from a millisecond no-op to a long LLM call or script.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

BUILD = Info("awe_build", "The awe version and the database backend", registry=REGISTRY)

STEP_ATTEMPTS = Counter(
    "awe_step_attempts",
    "Step attempts whose result was recorded, by outcome",
    ["queue", "kind", "outcome"],
    registry=REGISTRY,
)
STEPS_DEAD = Counter(
    "awe_steps_dead",
    "Steps that went to the dead-letter queue, by failure category",
    ["queue", "category"],
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "awe_step_duration_seconds",
    "How long one step attempt ran on its worker",
    ["queue", "kind"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "awe_step_queue_wait_seconds",
    "How long a step waited from ready to started",
    ["queue", "kind"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
RUNS_FINISHED = Counter(
    "awe_runs_finished",
    "Runs that reached a final state, by workflow and status",
    ["workflow", "status"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "awe_run_duration_seconds",
    "From a run's creation to its final state, by workflow and status",
    ["workflow", "status"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
LEASE_EXPIRIES = Counter(
    "awe_lease_expiries",
    "Steps whose worker stopped heartbeating, taken back by the reaper",
    ["queue"],
    registry=REGISTRY,
)
RETENTION_DELETED = Counter(
    "awe_retention_deleted",
    "Rows retention deleted, by table (runs, steps, run_events, audit_log, …)",
    ["table"],
    registry=REGISTRY,
)
CLAIMS_LIMITED = Counter(
    "awe_claims_limited",
    "Claims that a queue's concurrency or rate limit held back while steps were ready",
    ["queue", "limit"],
    registry=REGISTRY,
)
WORKER_SLOTS = Gauge(
    "awe_worker_slots",
    "Step slots of the workers in this process, used or free",
    ["state"],
    registry=REGISTRY,
)
WORKER_UP = Gauge("awe_worker_up", "Workers running in this process", registry=REGISTRY)
SCHEDULER_LEADER = Gauge(
    "awe_scheduler_leader",
    "1 while a scheduler in this process holds the leader lease",
    registry=REGISTRY,
)
SCHEDULE_LATENESS = Histogram(
    "awe_schedule_lateness_seconds",
    "How late a schedule fired after its cron time",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)
LLM_REQUESTS = Counter(
    "awe_llm_requests",
    "LLM chat requests, by provider, model and outcome (ok or error)",
    ["provider", "model", "outcome"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "awe_llm_tokens",
    "LLM tokens, by provider, model and direction (in: the prompt, out: the completion)",
    ["provider", "model", "direction"],
    registry=REGISTRY,
)
LLM_LATENCY = Histogram(
    "awe_llm_request_duration_seconds",
    "How long one LLM chat request took",
    ["provider", "model"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
EMBEDDING_CALLS = Counter(
    "awe_embedding_calls",
    "Calls to the embedder, by provider",
    ["provider"],
    registry=REGISTRY,
)
EMBEDDING_TEXTS = Counter(
    "awe_embedding_texts",
    "Texts embedded, by provider",
    ["provider"],
    registry=REGISTRY,
)


def describe(backend: str) -> None:
    """Name this process's version and database backend in ``awe_build_info``."""
    BUILD.info({"version": __version__, "backend": backend})


def render(*extra: Collector) -> bytes:
    """The Prometheus text of this process, with ``extra`` collectors (the API's) after it."""
    if not extra:
        return generate_latest(REGISTRY)
    return generate_latest(_Joined(extra))


class _Joined(Collector):
    """This process's registry and some collectors, rendered as one."""

    def __init__(self, extra: tuple[Collector, ...]) -> None:
        self.extra = extra

    def collect(self) -> Iterator[Any]:
        """Every family of the registry, then of each collector."""
        yield from REGISTRY.collect()
        for collector in self.extra:
            yield from collector.collect()


def serve(port: int, host: str = "127.0.0.1") -> Callable[[], None]:
    """Serve this process's series at ``http://host:port/metrics`` (a worker's or a scheduler's
    ``--metrics-port``) on a thread; returns what stops it."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


# ------------------------------------------------------------------- counted once committed


def after_commit(conn: Any, observe: Callable[[], None]) -> None:
    """Run ``observe`` once the transaction of ``conn`` commits (never if it rolls back)."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(observe)


def mark(conn: Any) -> int:
    """How many observations wait on ``conn`` (to drop the ones of a failed savepoint)."""
    return len(conn.info.get(_AFTER_COMMIT, ()))


def drop_since(conn: Any, position: int) -> None:
    """Forget the observations made since :func:`mark` returned ``position``."""
    del conn.info.get(_AFTER_COMMIT, [])[position:]


def begin(conn: Any) -> None:
    """A transaction starts: nothing of an earlier, failed one may be counted."""
    conn.info.pop(_AFTER_COMMIT, None)


def committed(conn: Any) -> None:
    """The transaction committed: count what it did."""
    for observe in conn.info.pop(_AFTER_COMMIT, ()):
        try:
            observe()
        except Exception:
            logging.getLogger("awe.metrics").exception("could not count what a transaction did")
