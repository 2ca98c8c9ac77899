"""No single step can hurt the worker: a template that raises or would cost too much, log data
that is not JSON, a NUL character, workflows that call each other. Each fails (or stores safely)
its own step or run, with a clear message; the step upstream ran exactly once; the worker goes on
heartbeating, so its other long step is not run again elsewhere."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from awe.core.errors import ValidationFailed
from awe.engine.client import Engine
from awe.engine.worker import Worker, WorkerOptions
from awe.services import workflows
from awe.storage.database import Database
from awe.storage.engine_models import RunEvent
from tests.integration.conftest import Drain
from tests.support.wait import wait_until

POISON = {
    "division": ("{{ 1 / 0 }}", "ZeroDivisionError"),
    "not_json": ("{{ steps.up.output.text | fromjson }}", "JSONDecodeError"),
    "repetition": ("{{ 'a' * 10 ** 9 }}", "too costly"),
    "power": ("{{ 7 ** 99999999 }}", "too costly"),
    "padding": ("{{ 'x'.ljust(10 ** 9) }}", "too costly"),
    "loops": (
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
        "longer than",
    ),
}


def poisoned(name: str, template: str) -> dict[str, Any]:
    """An upstream noop, then a step whose parameter is the poisonous template."""
    return {
        "name": f"poison-{name.replace('_', '-')}",
        "steps": [
            {"id": "up", "kind": "noop", "with": {"text": "not json at all"}},
            {"id": "down", "kind": "noop", "needs": ["up"], "with": {"value": template}},
        ],
    }


def test_poisonous_templates_fail_only_their_step_and_the_worker_keeps_its_lease(
    database: Database, engine: Engine
) -> None:
    """While a 4 s step runs on a 1 s lease, six runs whose downstream template raises or is
    too costly go through the same worker: each downstream step is dead (validation) naming what
    went wrong, each upstream step ran exactly once, and the long step is never reaped (it
    finishes on its first attempt)."""
    long_run = engine.submit(
        {"name": "long", "steps": [{"id": "wait", "kind": "sleep", "with": {"seconds": 4}}]}
    )
    worker = Worker(database, WorkerOptions(concurrency=4, lease_seconds=1.0))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: engine.get_run(long_run).steps[0].status == "running", what="start")
        runs = {name: engine.submit(poisoned(name, t)) for name, (t, _) in POISON.items()}
        wait_until(
            lambda: all(engine.get_run(r).status == "failed" for r in runs.values()),
            timeout=60,
            what="the poisoned runs to fail",
        )
        wait_until(lambda: engine.get_run(long_run).status == "succeeded", what="the long run")
    finally:
        worker.stop()
        thread.join(timeout=30)
    for name, run_id in runs.items():
        run = engine.get_run(run_id)
        up, down = run.step("up"), run.step("down")
        assert (up.status, up.attempt) == ("succeeded", 1), name
        assert (down.status, down.error_category) == ("dead", "validation"), name
        assert POISON[name][1] in (down.error_message or ""), (name, down.error_message)
        assert "step down: with.value" in (down.error_message or "")
    wait = engine.get_run(long_run).step("wait")
    assert (wait.attempt, wait.errors) == (1, [])  # never reaped, never run twice


def test_log_data_that_is_not_json_and_nul_characters_are_stored_safely(
    engine: Engine, drain: Drain, database: Database
) -> None:
    """Log data JSON cannot hold is stored as text; NUL characters in logs and outputs are
    replaced (PostgreSQL refuses them in text) instead of failing the step or its batch."""
    run_id = engine.submit(
        {
            "name": "odd",
            "steps": [
                {
                    "id": "odd",
                    "kind": "python",
                    "with": {"function": "tests.support.kinds:log_oddities"},
                },
                {"id": "after", "kind": "noop", "needs": ["odd"]},
            ],
        }
    )
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("odd").output == "a NUL \x00 in an output"  # JSON keeps it, escaped
    with database.read() as conn:
        logs = conn.execute(
            select(RunEvent.message, RunEvent.data).where(
                RunEvent.run_id == run_id, RunEvent.type == "log"
            )
        ).all()
    assert [m for m, _ in logs] == ["odd data", "a NUL \ufffd in a log line"]
    data = logs[0][1]
    assert data["thing"].startswith("<tests.support.kinds.Opaque object")
    assert isinstance(data["raw"], str)
    assert isinstance(data["numbers"], str)


def test_workflows_that_call_each_other_are_refused_at_push(
    database: Database, tmp_path: Any
) -> None:
    """b calls a, which calls b: pushing b names the cycle (no RecursionError, nothing stored)."""
    first = tmp_path / "a.yaml"
    first.write_text(
        "name: a\nsteps:\n  - {id: call, kind: workflow, with: {workflow: b}}\n", encoding="utf-8"
    )
    workflows.push(database, first)
    second = tmp_path / "b.yaml"
    second.write_text(
        "name: b\nsteps:\n  - {id: back, kind: workflow, with: {workflow: a}}\n", encoding="utf-8"
    )
    with pytest.raises(ValidationFailed, match="workflows call each other: b -> a -> b"):
        workflows.push(database, second)
    assert [w.name for w in workflows.latest_versions(database)] == ["a"]


def test_a_cycle_through_templated_names_stops_at_the_depth_limit(
    database: Database, engine: Engine, drain: Drain, tmp_path: Any
) -> None:
    """A workflow that calls itself through a name given by an input (known only at run time)
    nests to AWE_MAX_WORKFLOW_DEPTH and stops there with a clear error; the run fails, nothing
    recurses without end."""
    source = tmp_path / "loop.yaml"
    source.write_text(
        "name: loop\ninputs: {target: {type: string, default: loop}}\nsteps:\n"
        "  - {id: again, kind: workflow, with: {workflow: '{{ inputs.target }}'}}\n",
        encoding="utf-8",
    )
    stored, _ = workflows.push(database, source)
    run_id = engine.submit(stored.spec, {"target": "loop"})
    drain()
    run = engine.get_run(run_id)
    assert run.status == "failed"
    chain = []
    current = run
    while True:
        children = engine.child_runs(current.id)
        if not children:
            break
        current = engine.get_run(children["again"].id)
        chain.append(current)
    assert len(chain) == 8  # the default AWE_MAX_WORKFLOW_DEPTH
    deepest = chain[-1].step("again")
    assert (deepest.status, deepest.error_category) == ("dead", "workflow_depth")
    assert "AWE_MAX_WORKFLOW_DEPTH" in (deepest.error_message or "")


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ range(3) }}", "not a JSON value"),
        ("{{ 1e308 * 10 }}", "not a JSON value"),
        ("{{ lipsum }}", "not a JSON value"),
        ("{{ ([[0] * 100] * 2000) | sum(start=[]) }}", "sum adds numbers"),
        ("{{ '{0:>{1}}'.format('', 10 ** 9) }}", "too large"),
        ("{{ '%.9999999d' % 1 }}", "too large"),
    ],
)
def test_values_that_cannot_be_stored_or_cost_too_much_fail_their_step(
    engine: Engine, drain: Drain, template: str, words: str
) -> None:
    """A template that gives something JSON cannot hold, or builds something huge another way,
    fails its own step with the reason; the step upstream succeeded once."""
    run_id = engine.submit(poisoned("odd", template))
    drain()
    run = engine.get_run(run_id)
    assert (run.step("up").status, run.step("up").attempt) == ("succeeded", 1)
    down = run.step("down")
    assert (down.status, down.error_category) == ("dead", "validation")
    assert words in (down.error_message or ""), down.error_message


def test_one_runs_templates_share_one_time_budget(engine: Engine, drain: Drain) -> None:
    """Twelve steps readied together, each with a loop that takes well under its own half
    second: together they may take two seconds, and the ones past that are refused as too
    costly; nothing holds the transaction much longer."""
    slow = "{% for a in range(1500) %}{% for b in range(100) %}{% endfor %}{% endfor %}"
    spec = {
        "name": "many",
        "steps": [{"id": f"s{i}", "kind": "noop", "with": {"v": slow}} for i in range(12)],
    }
    run_id = engine.submit(spec)
    drain()
    statuses = [s.status for s in engine.get_run(run_id).steps]
    assert "dead" in statuses, statuses
    dead = [s for s in engine.get_run(run_id).steps if s.status == "dead"]
    assert all("too costly" in (s.error_message or "") for s in dead)


def test_a_value_that_only_looks_sealed_is_kept_as_it_is(engine: Engine, drain: Drain) -> None:
    """A parameter shaped like awe's sealed envelope is stored and read back as plain data: no
    worker tries to open it (before, one such row stopped every worker's claims)."""
    shaped = {"__awe_sealed_v1__": "awe1:not-really"}
    run_id = engine.submit(
        {"name": "shaped", "steps": [{"id": "a", "kind": "noop", "with": shaped}]}
    )
    drain()
    run = engine.get_run(run_id)
    assert (run.status, run.step("a").output) == ("succeeded", shaped)


def test_a_steps_logs_all_come_before_its_final_state(
    engine: Engine, drain: Drain, database: Database
) -> None:
    """A step that logs hundreds of lines and finishes at once: in the run's event order, every
    line comes before the step's 'succeeded'."""
    run_id = engine.submit(
        {
            "name": "chatty",
            "steps": [
                {"id": "talk", "kind": "python", "with": {"function": "tests.support.kinds:chatty"}}
            ],
        }
    )
    drain()
    ordered = [(e.type, e.message) for e in engine.events(run_id, limit=5000)]
    done = ordered.index(("state", "step talk succeeded"))
    logs = [i for i, (kind, _) in enumerate(ordered) if kind == "log"]
    assert len(logs) == 300
    assert max(logs) < done
