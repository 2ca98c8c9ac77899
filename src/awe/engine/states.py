"""Run and step states, and which of them are still open."""

from __future__ import annotations

# Step states.
PENDING = "pending"  # waiting for its needs
QUEUED = "queued"  # ready; claimable once run_after has passed (a retry waits here too)
RUNNING = "running"  # leased by a worker
WAITING = "waiting"  # a ``kind: workflow`` step waiting for its child run; no lease is held
SUCCEEDED = "succeeded"
DEAD = "dead"  # retries exhausted or not retryable: the dead-letter queue
CANCELLED = "cancelled"
SKIPPED = "skipped"  # its condition was false, or an upstream step failed or was skipped

STEP_OPEN = frozenset({PENDING, QUEUED, RUNNING, WAITING})

# Run states.
RUN_QUEUED = "queued"
RUN_RUNNING = "running"
RUN_SUCCEEDED = "succeeded"
RUN_FAILED = "failed"
RUN_CANCELLED = "cancelled"

RUN_FINAL = frozenset({RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED})
RUN_STATES = (RUN_QUEUED, RUN_RUNNING, RUN_SUCCEEDED, RUN_FAILED, RUN_CANCELLED)
