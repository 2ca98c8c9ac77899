"""Identifiers are UUIDv7: valid, unique, and ordered by creation time."""

from __future__ import annotations

import time
import uuid

from awe.core.ids import new_id


def test_ids_are_uuid7_and_time_ordered() -> None:
    """Ids parse as version-7 UUIDs and an id made later sorts after one made earlier."""
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert uuid.UUID(first).version == 7
    assert uuid.UUID(first).variant == uuid.RFC_4122
    assert first < second
    assert len({new_id() for _ in range(1000)}) == 1000
