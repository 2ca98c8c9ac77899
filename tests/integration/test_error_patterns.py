"""Error patterns from the recorded attempts, on SQLite and PostgreSQL: ``top`` counts match
the dead letters by category, workflow and step (retried attempts counted too); following
returns only what was recorded after it started; ``explain`` sends the failure to the real
local model with PII scrubbed and labels the answer as the model's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from awe.core.config import Settings
from awe.engine.client import Engine
from awe.engine.listing import DeadLetterFilter
from awe.services import error_patterns
from awe.storage.database import Database
from tests.integration.conftest import Drain

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def broken(name: str, code: int, attempts: int = 1) -> dict[str, Any]:
    """A one-step workflow whose step exits with ``code``, tried ``attempts`` times."""
    return {
        "name": name,
        "steps": [
            {"id": "boom", "kind": "shell",
             "retry": {"max_attempts": attempts, "backoff": [0], "jitter": 0},
             "with": {"command": f"echo 'mail ada.lovelace@example.com failed' >&2; exit {code}",
                      "env": {"GITHUB_TOKEN": TOKEN}}}
        ],
    }  # fmt: skip


def test_top_counts_match_the_dead_letters(database: Database, drain: Drain) -> None:
    """Three runs of 'etl' dying with exit 1 (retryable: each tried twice) and two of
    'report' with exit 4 (not retried): by category 6 and 2 failed attempts, 3 and 2 of
    them dead, as many as the
    dead-letter queue holds per category; by workflow and by step the same split."""
    engine = Engine(database)
    for _ in range(3):
        engine.submit(broken("etl", 1, attempts=2))
    for _ in range(2):
        engine.submit(broken("report", 4))
    drain()
    found = error_patterns.top(database, since=timedelta(hours=1), by="category")
    assert found["truncated"] is False
    by_category = {r["key"]: r for r in found["rows"]}
    assert {k: (r["count"], r["dead"]) for k, r in by_category.items()} == {
        "exit_code:1": (6, 3), "exit_code:4": (2, 2),
    }  # fmt: skip
    for category, row in by_category.items():
        assert row["dead"] == len(engine.dead_letters(DeadLetterFilter(category=category)))
    assert by_category["exit_code:1"]["example"].startswith("command exited 1")
    by_workflow = error_patterns.top(database, since=timedelta(hours=1), by="workflow")["rows"]
    assert [(r["key"], r["count"]) for r in by_workflow] == [("etl", 6), ("report", 2)]
    by_step = error_patterns.top(database, since=timedelta(hours=1), by="step")["rows"]
    assert [(r["key"], r["count"], r["dead"]) for r in by_step] == [
        ("etl/boom", 6, 3), ("report/boom", 2, 2),
    ]  # fmt: skip
    assert error_patterns.top(database, since=timedelta(seconds=0), by="category")["rows"] == []


def test_following_sees_only_what_came_after(database: Database, drain: Drain) -> None:
    """Failures recorded before the follower started are not shown; the next one is, once,
    however often it polls."""
    engine = Engine(database)
    engine.submit(broken("old", 5))
    drain()
    follower = error_patterns.Follower(database)
    assert follower.poll() == []
    run_id = engine.submit(broken("new", 6))
    drain()
    found = follower.poll()
    assert [(e.workflow, e.category, e.run_id, e.status) for e in found] == [
        ("new", "exit_code:6", run_id, "dead")
    ]
    assert follower.poll() == []


def test_explain_asks_the_local_model_without_the_pii(
    database: Database, settings: Settings, drain: Drain
) -> None:
    """By run id: the failed step is found, what is sent holds its error and definition with
    the e-mail address and the token in its environment replaced, and the local model's
    answer comes back with its name."""
    run_id = Engine(database).submit(broken("etl", 3))
    drain()
    found = error_patterns.explain(database, settings, run_id)
    assert found["run_id"] == run_id
    assert found["step"] == "boom"
    assert "exit_code:3" in found["sent"]
    assert "ada.lovelace@example.com" not in found["sent"]
    assert "ghp_" not in found["sent"]  # the token in the step's environment
    assert "[EMAIL" in found["sent"] or "<EMAIL" in found["sent"]
    assert found["provider"] == "local"
    assert found["diagnosis"]
