"""Queues and workers as operators see them (the reads live in the engine, where ``awe doctor``
reads them too)."""

from __future__ import annotations

from awe.engine.queue_stats import QueueStats, counts, governance_stats, live_workers, queue_stats

__all__ = ["QueueStats", "counts", "governance_stats", "live_workers", "queue_stats"]
