"""Embedding many texts: in batches, a few requests at a time, under a per-provider rate limit.

The rate limit (requests per minute, AWE_RAG_EMBEDDING_RATE_LIMIT) is a token bucket shared by
every ingest of this process that uses the same provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from awe.ai.embeddings import Embedder, Vectors


class RateLimiter:
    """At most ``per_minute`` acquisitions a minute, in bursts of up to ``per_minute / 60 + 1``.

    ``clock`` and ``sleep`` are the monotonic clock and the way to wait (tests pass their own).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.clock = clock
        self.sleep = sleep
        self.tokens = self.capacity
        self.at = clock()
        self.lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
                self.at = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return waited
                pause = (1 - self.tokens) / self.rate
            self.sleep(pause)
            waited += pause


_limiters: dict[tuple[str, int], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(provider: str, per_minute: int) -> RateLimiter | None:
    """The process's limiter for ``provider`` at ``per_minute`` (None for no limit)."""
    if per_minute <= 0:
        return None
    with _limiters_lock:
        return _limiters.setdefault((provider, per_minute), RateLimiter(per_minute))


def embed_all(
    embedder: Embedder,
    texts: list[str],
    *,
    batch_size: int,
    concurrency: int,
    rate_per_minute: int = 0,
    on_batch: Callable[[int, int], None] | None = None,
) -> Vectors:
    """Every text's vector, in order; ``on_batch(done, total)`` after each batch."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    limiter = limiter_for(embedder.provider, rate_per_minute)
    done = 0
    lock = threading.Lock()

    def one(batch: list[str]) -> Vectors:
        nonlocal done
        if limiter is not None:
            limiter.acquire()
        vectors = embedder.passages(batch)
        with lock:
            done += len(batch)
            if on_batch is not None:
                on_batch(done, len(texts))
        return vectors

    # An in-process model computes one batch at a time anyway; threads would only add overhead
    # (and idle OpenMP pools spinning on the cores the busy one needs).
    if concurrency <= 1 or len(batches) == 1 or not embedder.parallel:
        results = [one(batch) for batch in batches]
    else:
        with ThreadPoolExecutor(min(concurrency, len(batches))) as pool:
            results = list(pool.map(one, batches))
    return np.vstack(results)
