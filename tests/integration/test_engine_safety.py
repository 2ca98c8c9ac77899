"""Engine correctness found in review, on SQLite and PostgreSQL: for_each idempotency keys,
releasing a step whose run is being cancelled, lease tokens and attempt numbers, templates that
see changes made earlier in the same pass, the database's clock for leases, and event numbers
that never let a reader skip an event."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from awe.core.config import Settings
from awe.engine import results
from awe.engine.client import Engine
from awe.engine.errors import LeaseLost
from awe.engine.events import add_events
from awe.services import workflows
from awe.storage import queue as queue_sql
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.servers import http_server

#: These tests are about PostgreSQL alone (SQLite has one clock and one writer).
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


def one(step: dict[str, Any]) -> dict[str, Any]:
    """A workflow of one step."""
    return {"name": "one", "steps": [step]}


def test_each_for_each_item_has_its_own_idempotency_key(
    engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """A POST fanned out over three items sends three distinct keys, {run}/{step}/{index}, so
    a receiver that honours them keeps all three."""
    with http_server() as web:
        run_id = engine.submit(
            one(
                {
                    "id": "post",
                    "kind": "http",
                    "for_each": ["a", "b", "c"],
                    "with": {
                        "method": "POST",
                        "url": web.url + "/hook",
                        "json": {"i": "{{ item }}"},
                    },
                }
            )
        )
        drain(settings=make_settings(tmp_path, http_allowed_hosts="127.0.0.1"))
        keys = [r.header("Idempotency-Key") for r in web.seen("/hook")]
    assert engine.get_run(run_id).status == "succeeded"
    assert sorted(keys) == [f"{run_id}/post/{i}" for i in range(3)]  # type: ignore[type-var]


def claim(database: Database, owner: str, lease: float = 30) -> queue_sql.ClaimedStep:
    """Claim the one ready step as ``owner``."""
    with database.write() as conn:
        (step,) = queue_sql.claim(
            conn,
            owner=owner,
            queues=["default"],
            limit=1,
            now=Engine(database).clock.now(),
            lease_seconds=lease,
        )
    return step


def test_releasing_a_step_of_a_cancelled_run_cancels_it(engine: Engine, database: Database) -> None:
    """A stopping worker that gives back a step whose run was cancelled meanwhile cancels the
    step instead of putting it back in the queue: no later claim takes it."""
    run_id = engine.submit(one({"id": "a", "kind": "noop"}))
    step = claim(database, "stopping-worker")
    engine.cancel(run_id)
    with database.write() as conn:
        assert (
            results.release(
                conn,
                run_id=run_id,
                step_id=step.id,
                token=step.lease_token,
                now=engine.clock.now(),
            )
            == "cancelled"
        )
    assert engine.get_run(run_id).step("a").status == "cancelled"
    with database.write() as conn:
        assert (
            queue_sql.claim(
                conn,
                owner="other",
                queues=["default"],
                limit=5,
                now=engine.clock.now(),
                lease_seconds=30,
            )
            == []
        )


def test_each_claim_has_its_own_token_and_attempt_numbers_never_go_back(
    engine: Engine, database: Database
) -> None:
    """A released claim gives its attempt back to the budget, but its number is not reused: the
    next claim is attempt 2 with a new token, and the first claim's token is refused by
    completion, failure and release alike."""
    run_id = engine.submit(one({"id": "a", "kind": "noop", "retry": {"max_attempts": 3}}))
    first = claim(database, "w")
    with database.write() as conn:
        results.release(
            conn, run_id=run_id, step_id=first.id, token=first.lease_token, now=engine.clock.now()
        )
    second = claim(database, "w")  # the same worker again: only the token tells them apart
    assert (first.attempt, second.attempt) == (1, 2)
    assert (first.tries, second.tries) == (1, 1)
    assert first.lease_token != second.lease_token
    now = engine.clock.now()
    with pytest.raises(LeaseLost), database.write() as conn:
        results.complete(
            conn,
            run_id=run_id,
            step_id=first.id,
            token=first.lease_token,
            attempt=1,
            output="stale",
            now=now,
        )
    with database.write() as conn:
        assert (
            results.release(conn, run_id=run_id, step_id=first.id, token=first.lease_token, now=now)
            is None
        )
    with database.write() as conn:
        results.complete(
            conn,
            run_id=run_id,
            step_id=second.id,
            token=second.lease_token,
            attempt=2,
            output="fresh",
            now=now,
        )
    step = engine.get_run(run_id).step("a")
    assert (step.status, step.output, step.attempt) == ("succeeded", "fresh", 2)


def test_templates_see_changes_made_earlier_in_the_same_pass(engine: Engine, drain: Drain) -> None:
    """A step that goes dead as it becomes ready (its template raises) with on_failure:
    continue is seen as dead by the step that needs it, readied in the same pass."""
    run_id = engine.submit(
        {
            "name": "pass",
            "steps": [
                {"id": "a", "kind": "noop", "on_failure": "continue", "with": {"x": "{{ 1 / 0 }}"}},
                {
                    "id": "b",
                    "kind": "noop",
                    "needs": ["a"],
                    "with": {"saw": "{{ steps.a.status }}"},
                },
            ],
        }
    )
    drain()
    run = engine.get_run(run_id)
    assert run.step("a").status == "dead"
    assert (run.step("b").status, run.step("b").output) == ("succeeded", {"saw": "dead"})


def test_a_child_settled_at_once_is_seen_by_what_needs_it(
    database: Database, engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """A child run that finishes inside the transaction that starts it (every step skipped)
    settles its parent step there, and the next step reads that step's output."""
    child = tmp_path / "child.yaml"
    child.write_text(
        "name: child\nsteps:\n  - {id: never, kind: noop, when: 'false'}\noutputs: {said: done}\n",
        encoding="utf-8",
    )
    workflows.push(database, child)
    run_id = engine.submit(
        {
            "name": "parent",
            "steps": [
                {"id": "sub", "kind": "workflow", "with": {"workflow": "child"}},
                {
                    "id": "next",
                    "kind": "noop",
                    "needs": ["sub"],
                    "with": {"got": "{{ steps.sub.output.said }}"},
                },
            ],
        }
    )
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("next").output == {"got": "done"}


@pytest.mark.parametrize("backend", [POSTGRES], indirect=True)
def test_leases_follow_the_database_clock_on_postgresql(engine: Engine, database: Database) -> None:
    """A worker whose clock is an hour behind renews a lease to the database's now plus the
    lease, not to its own; one whose clock is an hour ahead cannot reap that live lease:
    PostgreSQL's own clock decides."""
    engine.submit(one({"id": "a", "kind": "sleep", "with": {"seconds": 60}}))
    step = claim(database, "w")
    ahead = engine.clock.now() + timedelta(hours=1)
    behind = engine.clock.now() - timedelta(hours=1)
    with database.write() as conn:
        held = queue_sql.heartbeat(conn, tokens=[step.lease_token], now=behind, lease_seconds=30)
        database_now = conn.execute(text("SELECT now()")).scalar_one()
    assert held == {step.lease_token: False}
    expires = engine.get_run(step.run_id).step("a")
    with database.read() as conn:
        renewed = conn.execute(
            text("SELECT lease_expires_at FROM steps WHERE id = :id"), {"id": expires.id}
        ).scalar_one()
    assert abs((renewed - database_now).total_seconds() - 30) < 5
    with database.write() as conn:
        assert queue_sql.expired_leases(conn, now=ahead) == []
        assert results.reap_one(conn, step_id=step.id, now=ahead) is None
    assert engine.get_run(step.run_id).step("a").status == "running"


@pytest.mark.parametrize("backend", [POSTGRES], indirect=True)
def test_a_reader_following_events_never_skips_one_that_commits_late(
    engine: Engine, database: Database
) -> None:
    """Writer 1 adds an event and holds its transaction open; writer 2 adds one and commits;
    a reader polling all along sees both, in order: writer 2's number comes after writer 1's,
    because numbers are given under the run's lock."""
    run_id = engine.submit(one({"id": "a", "kind": "sleep", "with": {"seconds": 60}}))
    start = engine.events(run_id)[-1].seq
    holding = threading.Event()
    release = threading.Event()

    def writer(message: str, *, hold: bool) -> None:
        event = {
            "run_id": run_id,
            "type": "log",
            "message": message,
            "created_at": engine.clock.now(),
        }
        with database.write() as conn:
            add_events(conn, [event])
            if hold:
                holding.set()
                release.wait(10)

    first = threading.Thread(target=writer, args=("first",), kwargs={"hold": True})
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=writer, args=("second",), kwargs={"hold": False})
    second.start()
    seen: list[str] = []
    cursor = start
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the reader polls while writer 1 holds on
        batch = engine.events(run_id, after=cursor)
        seen += [e.message for e in batch]
        cursor = batch[-1].seq if batch else cursor
        if time.monotonic() > deadline - 2:
            release.set()
        time.sleep(0.05)
    first.join(10)
    second.join(10)
    batch = engine.events(run_id, after=cursor)
    seen += [e.message for e in batch]
    assert seen == ["first", "second"]


def test_a_member_run_is_checked_again_on_the_worker(
    db_url: str, engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """A member's run that was allowed shell when it started (AWE_MEMBER_KINDS said so) is
    refused by a worker whose setting no longer allows it: the step fails with permission,
    is not retried, and never ran."""
    from awe.storage.database import create_database

    generous: Settings = make_settings(tmp_path / "then", member_kinds="shell,noop")
    then = create_database(generous, url=db_url)
    marker = tmp_path / "ran"
    try:
        run_id = Engine(then).submit(
            one({"id": "s", "kind": "shell", "with": {"command": f"touch {marker}"}}), trusted=False
        )
    finally:
        then.dispose()
    drain()  # the worker's settings: members may not use shell
    step = engine.get_run(run_id).step("s")
    assert (step.status, step.error_category, step.attempt) == ("dead", "permission", 1)
    assert "AWE_MEMBER_KINDS" in (step.error_message or "")
    assert not marker.exists()


def test_an_admins_workflow_may_not_call_a_members(
    database: Database, engine: Engine, tmp_path: Path
) -> None:
    """A workflow pushed by an admin that calls one a member pushed is refused when it starts:
    the member could otherwise change what the admin's run does."""
    from awe.core.errors import PermissionDenied
    from awe.services import auth
    from awe.services.audit import SYSTEM
    from awe.services.tokens import Principal

    member = auth.create_user(
        database, email="m@example.com", password="a long password", actor=SYSTEM
    )
    principal = Principal("user", member.id, "member")
    workflows.push_source(
        database,
        "name: helper\nsteps: [{id: a, kind: noop}]\n",
        principal=principal,
        actor=SYSTEM,
    )
    caller = "name: caller\nsteps: [{id: c, kind: workflow, with: {workflow: helper}}]\n"
    stored, _ = workflows.push_source(database, caller, actor=SYSTEM)  # the operator: trusted
    with pytest.raises(PermissionDenied, match="was pushed by a member"):
        engine.submit(stored.spec, trusted=True)


def test_a_wide_tree_of_calls_is_checked_once_and_started_within_bounds(
    database: Database, engine: Engine, drain: Drain
) -> None:
    """Seven levels of workflows, each calling the next level's one five times (5^6 runs if
    all started): pushing the top walks each stored version once, and starting it stops at 100
    child runs in one go with a clear error, instead of holding the database for minutes."""
    names = [f"level-{n}" for n in range(7)]
    workflows.push_source(database, f"name: {names[-1]}\nsteps: [{{id: a, kind: noop}}]\n")
    started = time.monotonic()
    for upper, lower in zip(reversed(names[:-1]), reversed(names[1:]), strict=True):
        calls = "".join(
            f"  - {{id: c{i}, kind: workflow, with: {{workflow: {lower}}}}}\n" for i in range(5)
        )
        workflows.push_source(database, f"name: {upper}\nsteps:\n{calls}")
    assert time.monotonic() - started < 20
    run_id = engine.submit(workflows.get(database, names[0]).spec)
    drain()
    assert time.monotonic() - started < 60
    run = engine.get_run(run_id)
    assert run.status == "failed"
    with database.read() as conn:
        runs = conn.execute(text("SELECT COUNT(*) FROM runs")).scalar_one()
        refused = (
            conn.execute(
                text("SELECT error_message FROM steps WHERE error_category = 'workflow_depth'")
            )
            .scalars()
            .all()
        )
    assert runs <= 1 + 100
    assert any("more than 100 child runs would start at once" in (m or "") for m in refused)


@pytest.mark.parametrize("backend", [POSTGRES], indirect=True)
def test_the_heartbeat_and_the_reaper_pass_over_rows_another_transaction_holds(
    engine: Engine, database: Database
) -> None:
    """While another transaction holds a running step's row (its result being recorded), the
    heartbeat does not wait for it: it answers at once, counts that claim as held and reads its
    cancel flag; the reaper passes over a run whose row is held instead of waiting."""
    engine.submit(one({"id": "a", "kind": "sleep", "with": {"seconds": 60}}))
    held_step = claim(database, "w")
    engine.submit(one({"id": "b", "kind": "sleep", "with": {"seconds": 60}}))
    free_step = claim(database, "w")
    with database.write() as conn:
        conn.execute(
            text("UPDATE steps SET cancel_requested = true WHERE id = :id"), {"id": held_step.id}
        )
    holder = database.engine.connect()
    try:
        locking = holder.begin()
        holder.execute(text("SELECT id FROM steps WHERE id = :id FOR UPDATE"), {"id": held_step.id})
        holder.execute(
            text("SELECT id FROM runs WHERE id = :id FOR UPDATE"), {"id": free_step.run_id}
        )
        started = time.monotonic()
        with database.write() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            beat = queue_sql.heartbeat(
                conn,
                tokens=[held_step.lease_token, free_step.lease_token],
                now=engine.clock.now(),
                lease_seconds=30,
            )
        with database.write() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            later = engine.clock.now() + timedelta(hours=1)
            reaped = results.reap_one(conn, step_id=free_step.id, now=later)
        took = time.monotonic() - started
        locking.rollback()
    finally:
        holder.close()
    assert beat == {held_step.lease_token: True, free_step.lease_token: False}
    assert reaped is None
    assert took < 2
    assert engine.get_run(free_step.run_id).step("b").status == "running"
