"""Starting many runs at once: ``Engine.submit_many`` and ``POST …/runs:batch``.

A batch is one transaction: every run's inputs are checked before any is written, each run has
its own idempotency key (a key used before, or twice in the batch, gives that one run), and the
runs it starts are ordinary runs (events numbered from 1, steps readied, drained to the end).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from awe.api.app import create_app
from awe.core.errors import ValidationFailed
from awe.engine import creation, templating, transitions
from awe.engine.client import MAX_BATCH, Engine
from awe.storage.auth_models import AuditEntry
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step
from tests.conftest import make_settings
from tests.integration.conftest import Drain

ECHO = {
    "name": "echo",
    "inputs": {"n": {"type": "integer", "required": True}},
    "steps": [
        {"id": "first", "kind": "noop", "with": {"value": "{{ inputs.n * 2 }}"}},
        {"id": "second", "kind": "noop", "needs": ["first"], "with": {"seen": "{{ inputs.n }}"}},
    ],
}


def _count(db: Database, table: Any) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_batch_creates_ordinary_runs_in_order(database: Database, drain: Drain) -> None:
    """Forty runs come back in the order given; each has its own inputs, one 'run queued' and
    one 'step first queued' event numbered 1 and 2, its root step queued and the other
    pending; drained, each run's outputs are its own."""
    engine = Engine(database)
    ids = engine.submit_many(ECHO, [{"n": i} for i in range(40)])
    assert len(set(ids)) == 40
    with database.read() as conn:
        events = conn.execute(
            select(RunEvent.run_id, RunEvent.seq, RunEvent.message).order_by(RunEvent.id)
        ).all()
        rows = conn.execute(
            select(Step.step_key, Step.status, func.count()).group_by(Step.step_key, Step.status)
        ).all()
    states = {f"{key}:{status}": n for key, status, n in rows}
    by_run: dict[str, list[tuple[int, str]]] = {}
    for run_id, seq, message in events:
        by_run.setdefault(run_id, []).append((seq, message))
    assert by_run == {i: [(1, "run queued"), (2, "step first queued")] for i in ids}
    assert states == {"first:queued": 40, "second:pending": 40}
    drain()
    for i, run_id in enumerate(ids):
        run = engine.get_run(run_id)
        assert run.status == "succeeded", run
        assert run.inputs == {"n": i}
        outputs = {s.step_key: s.output for s in run.steps}
        assert outputs == {"first": {"value": i * 2}, "second": {"seen": i}}


def test_keys_give_one_run_each_within_and_across_batches(database: Database) -> None:
    """A key used by an earlier submit gives that run; a key given twice in one batch gives one
    new run for both places; runs without a key are each new; nothing else is created."""
    engine = Engine(database)
    before = engine.submit(ECHO, {"n": 1}, idempotency_key="k-old")
    ids = engine.submit_many(
        ECHO,
        [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}],
        idempotency_keys=["k-old", "k-a", None, "k-a", None],
    )
    assert ids[0] == before
    assert ids[1] == ids[3]
    assert ids[1] != before
    assert len({ids[1], ids[2], ids[4], before}) == 4
    assert _count(database, Run) == 4
    again = engine.submit_many(ECHO, [{"n": 9}, {"n": 9}], idempotency_keys=["k-a", "k-old"])
    assert again == [ids[1], before]
    assert _count(database, Run) == 4


def test_one_bad_run_refuses_the_whole_batch(database: Database) -> None:
    """A run whose input has the wrong type is named by its index and nothing is written; too
    many runs, or keys that do not match the runs one for one, are refused before anything."""
    engine = Engine(database)
    with pytest.raises(
        ValidationFailed, match=r"runs\[2\]: input n='three' is not a valid integer"
    ):
        engine.submit_many(ECHO, [{"n": 1}, {"n": 2}, {"n": "three"}, {"n": 4}])
    with pytest.raises(ValidationFailed, match="1,000 runs at most"):
        engine.submit_many(ECHO, [{"n": 1}] * (MAX_BATCH + 1))
    with pytest.raises(ValidationFailed, match="one per run"):
        engine.submit_many(ECHO, [{"n": 1}, {"n": 2}], idempotency_keys=["only-one"])
    assert _count(database, Run) == 0
    assert _count(database, Step) == 0
    assert _count(database, RunEvent) == 0


def test_racing_batches_with_the_same_keys_make_each_run_once(database: Database) -> None:
    """Four threads submit the same 30 keyed runs at once: every thread gets the same 30 ids,
    and the database holds exactly 30 runs (the losers of the insert race read the winners')."""
    engine = Engine(database)
    keys = [f"race-{i}" for i in range(30)]
    results: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def submit() -> None:
        try:
            start.wait()
            results.append(engine.submit_many(ECHO, [{"n": 1}] * 30, idempotency_keys=keys))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(results) == 4
    assert all(r == results[0] for r in results)
    assert len(set(results[0])) == 30
    assert _count(database, Run) == 30


def _race(engine: Engine, batches: dict[str, list[str]]) -> dict[str, list[str]]:
    """Submit the keyed batches from one thread each, released at once; each one's run ids."""
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(batches))

    def submit(name: str, given: list[str]) -> None:
        try:
            start.wait()
            results[name] = engine.submit_many(
                ECHO, [{"n": 1}] * len(given), idempotency_keys=given
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=item) for item in batches.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_batches_sharing_keys_in_opposite_orders_never_deadlock(database: Database) -> None:
    """Two batches of the same 300 keys, one in reverse order, submitted at once (three times):
    neither fails (on PostgreSQL the keys are taken in one order, so the second waits for the
    first instead of deadlocking with it), both get the same run for each key, and each key
    has one run."""
    engine = Engine(database)
    for round_ in range(3):
        keys = [f"order-{round_}-{i:03d}" for i in range(300)]
        results = _race(engine, {"forward": keys, "backward": keys[::-1]})
        assert results["forward"] == results["backward"][::-1]
    assert _count(database, Run) == 900


def test_a_batch_that_loses_its_keys_to_another_reads_their_runs(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that looked its keys up before another submit took them (its insert then breaks
    the unique key) looks them up again and returns the other's runs, creating none."""
    engine = Engine(database)
    keys = ["lost-a", "lost-b", "lost-c"]
    first = engine.submit_many(ECHO, [{"n": 1}] * 3, idempotency_keys=keys)
    real = engine._by_keys
    calls: list[int] = []

    def stale_then_real(wanted: list[str | None]) -> dict[str, str] | None:
        calls.append(1)
        return {} if len(calls) == 1 else real(wanted)  # the first look misses the others' runs

    monkeypatch.setattr(engine, "_by_keys", stale_then_real)
    again = engine.submit_many(ECHO, [{"n": 2}] * 3, idempotency_keys=keys)
    assert again == first
    assert len(calls) == 2  # the insert failed on the keys, and the second look found them
    assert _count(database, Run) == 3


def test_a_plain_root_is_inserted_as_advance_would_have_queued_it(database: Database) -> None:
    """A root step with nothing to render goes in queued at creation; its row matches a root
    that advance readied (the same step with a condition): its parameters as input, ready now,
    its own queue, priority and attempts; a pending step's input stays SQL NULL."""
    step = {
        "kind": "noop",
        "with": {"x": 1},
        "queue": "special",
        "priority": 7,
        "retry": {"max_attempts": 9},
    }
    spec = {
        "name": "roots",
        "steps": [
            {"id": "plain", **step},
            {"id": "readied", **step, "when": "true"},
            {"id": "later", "kind": "noop", "needs": ["plain"]},
        ],
    }
    engine = Engine(database)
    [run_id] = engine.submit_many(spec, [None])
    with database.read() as conn:
        rows = {
            row.step_key: row
            for row in conn.execute(
                select(
                    Step.step_key,
                    Step.status,
                    Step.input,
                    Step.queue,
                    Step.priority,
                    Step.max_attempts,
                    Step.run_after,
                    Step.ref_nonce,
                ).where(Step.run_id == run_id)
            )
        }
        null_input = conn.execute(
            select(func.count())
            .select_from(Step)
            .where(Step.run_id == run_id, Step.input.is_(None))
        ).scalar_one()
    plain, readied = rows["plain"], rows["readied"]
    assert plain.status == readied.status == "queued"
    fields = ("input", "queue", "priority", "max_attempts", "run_after", "ref_nonce")
    assert [getattr(plain, f) for f in fields] == [getattr(readied, f) for f in fields]
    assert (plain.input, plain.queue, plain.priority, plain.max_attempts) == (
        {"x": 1},
        "special",
        7,
        9,
    )
    assert null_input == 1  # 'later' (pending): SQL NULL, not JSON null
    states = [e.message for e in engine.events(run_id) if e.type == "state"]
    assert sorted(states) == sorted(["run queued", "step plain queued", "step readied queued"])


COSTLY = {
    "name": "costly",
    "steps": [{"id": "a", "kind": "noop",
               "with": {"v": "{% for i in range(3000) %}{{ i }}{% endfor %}"}}],
}  # fmt: skip


def test_runs_of_a_batch_keep_their_own_template_allowance(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 runs whose templates take a few milliseconds each, in one batch, with a run's
    allowance cut to 0.1 s (far less than the batch's renders together): every run's step is
    queued (no run's step dies because its neighbours used the time)."""
    monkeypatch.setattr(transitions, "ADVANCE_TEMPLATE_SECONDS", 0.1)
    monkeypatch.setattr(templating, "PER_TEMPLATE_SECONDS", 0.0)
    engine = Engine(database)
    ids = engine.submit_many(COSTLY, [None] * 200)
    with database.read() as conn:
        statuses = conn.execute(
            select(Step.status, func.count()).where(Step.run_id.in_(ids)).group_by(Step.status)
        ).all()
    assert dict(statuses) == {"queued": 200}


def test_a_batch_that_takes_too_long_is_refused_whole(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose runs' first passes together pass BATCH_SECONDS is refused with what to do
    (start fewer runs per batch), and none of its runs, steps or events is written."""
    monkeypatch.setattr(creation, "BATCH_SECONDS", 0.01)
    engine = Engine(database)
    with pytest.raises(ValidationFailed, match="start fewer runs per batch"):
        engine.submit_many(COSTLY, [None] * 50)
    assert _count(database, Run) == 0
    assert _count(database, Step) == 0
    assert _count(database, RunEvent) == 0


@pytest.fixture
def api(database: Database, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A client and a member's header with a project 'mine' holding the workflow 'echo'."""
    settings = make_settings(
        tmp_path, admin_token="batch-admin-token-0123456789abcd", registration_open=True
    )
    with TestClient(create_app(settings, db=database)) as client:
        body = {"email": "bea@example.com", "password": "a long password here"}
        client.post("/api/v1/auth/register", json=body)
        token = client.post("/api/v1/auth/login", json=body).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/v1/projects", headers=headers, json={"name": "mine"}).is_success
        pushed = client.post(
            "/api/v1/projects/mine/workflows", headers=headers, json={"spec": ECHO}
        )
        assert pushed.status_code == 201, pushed.text
        yield client, headers


def test_the_api_starts_a_batch_and_audits_each_run(api: Any, database: Database) -> None:
    """A member starts 25 runs in their project: 201 with the ids in order, each run in the
    project with its inputs, one run.start audit entry per run; the same keys again give the
    same ids and create (and audit) nothing."""
    client, headers = api
    body = {
        "workflow": "echo",
        "runs": [{"inputs": {"n": i}, "idempotency_key": f"b-{i}"} for i in range(25)],
    }
    started = client.post("/api/v1/projects/mine/runs:batch", headers=headers, json=body)
    assert started.status_code == 201, started.text
    ids = started.json()["run_ids"]
    assert len(set(ids)) == 25
    shown = client.get(f"/api/v1/runs/{ids[7]}", headers=headers).json()
    assert shown["inputs"] == {"n": 7}
    with database.read() as conn:
        audited = conn.execute(
            select(AuditEntry.target_id).where(AuditEntry.action == "run.start")
        ).scalars()
        assert sorted(str(target) for target in audited) == sorted(ids)
    audit_entries = _count(database, AuditEntry)
    replay = client.post("/api/v1/projects/mine/runs:batch", headers=headers, json=body)
    assert replay.json()["run_ids"] == ids
    assert _count(database, Run) == 25
    assert _count(database, AuditEntry) == audit_entries  # a replay starts and audits nothing


def test_the_api_refuses_bad_batches_and_other_projects(api: Any, database: Database) -> None:
    """A bad input is a 422 naming the run and starts nothing; 1,001 runs and an empty list are
    422; a member cannot start runs in a project that is not theirs (404), nor without a
    token (401)."""
    client, headers = api
    url = "/api/v1/projects/mine/runs:batch"
    bad = {"workflow": "echo", "runs": [{"inputs": {"n": 1}}, {"inputs": {}}]}
    refused = client.post(url, headers=headers, json=bad)
    assert refused.status_code == 422
    assert "runs[1]" in refused.json()["detail"]
    assert "'n' is required" in refused.json()["detail"]
    too_many = {"workflow": "echo", "runs": [{"inputs": {"n": 1}}] * 1001}
    assert client.post(url, headers=headers, json=too_many).status_code == 422
    assert (
        client.post(url, headers=headers, json={"workflow": "echo", "runs": []}).status_code == 422
    )
    other_user = {"email": "cy@example.com", "password": "another long password"}
    client.post("/api/v1/auth/register", json=other_user)
    theirs = client.post("/api/v1/auth/login", json=other_user).json()["access_token"]
    made = client.post(
        "/api/v1/projects", headers={"Authorization": f"Bearer {theirs}"}, json={"name": "theirs"}
    )
    assert made.is_success, made.text
    other = {"workflow": "echo", "runs": [{"inputs": {"n": 1}}]}
    denied = client.post("/api/v1/projects/theirs/runs:batch", headers=headers, json=other)
    assert denied.status_code == 404
    assert client.post(url, json=other).status_code == 401
    assert _count(database, Run) == 0
