"""No single step can hurt the worker: a template that raises or would cost too much, log data
that is not JSON, a NUL character, workflows that call each other. Each fails (or stores safely)
its own step or run, with a clear message; the step upstream ran exactly once; the worker goes on
heartbeating, so its other long step is not run again elsewhere."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from awe.core.clock import SystemClock
from awe.core.errors import ConnectionFailed, ValidationFailed
from awe.engine import step_logs
from awe.engine.client import Engine
from awe.engine.secret_refs import Masker
from awe.engine.worker import Worker, WorkerOptions
from awe.services import workflows
from awe.storage.database import Database, create_database
from awe.storage.engine_models import RunEvent
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.servers import free_port
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
    # A list holding itself 2**60 times over, built in 60 lines: serialising it is one C call.
    "self_similar": (
        "{% set ns = namespace(v=[1]) %}{% for i in range(60) %}{% set ns.v = [ns.v, ns.v] %}"
        "{% endfor %}{{ ns.v | tojson | length }}",
        "too costly",
    ),
    # Two such lists compared: one C call, with no output to limit.
    "comparison": (
        "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
        "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
        "too costly",
    ),
    # Three gigabytes at once.
    "memory": ("{{ ((' ' * 1000000).join([''] * 3000)) | length }}", "more memory"),
    # A test and a filter that compute in C from what they are given: 10 GB, 10 ** 10**8.
    "divisibleby": ("{{ '%09999999999d' is divisibleby 1 }}", "more memory"),
    "round": ("{{ 1.5 | round('100000000' | int, 'floor') }}", "too costly"),
    # Widths that come from a value, or sit behind a mapping key.
    "nested_width": ("{{ '{0:>{1}}'.format('a', '2000000') }}", "may not come from a value"),
    "keyed_width": ("{{ '%(a)2000000s' % {'a': 'x'} }}", "too large"),
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
    """While a 4 s step runs on a 1 s lease, runs whose downstream template raises or is too
    costly (in memory, in time, or in one C call that no tracer can stop) go through the same
    worker: each downstream step is dead (validation) naming what
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
        ("{{ '%*d' % (10 ** 9, 1) }}", "too large"),
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
    """A for_each whose template takes a few milliseconds per item (far below its own half
    second): with 20 items it renders; with 3,000 the items together pass the run's two seconds
    (plus a millisecond per template), and the step is dead saying the run's templates used up
    their time, after about five seconds rather than the fifteen or more the items would take."""
    slow = "{% for a in range(100) %}{% for b in range(20) %}{% endfor %}{{ item }}{% endfor %}"

    def spec(name: str, items: int) -> dict[str, Any]:
        return {
            "name": name,
            "steps": [
                {
                    "id": "each",
                    "kind": "noop",
                    "for_each": f"{{{{ range({items}) | list }}}}",
                    "with": {"v": slow},
                }
            ],
        }

    few = engine.submit(spec("few", 20))
    started = time.monotonic()
    many = engine.submit(spec("many", 3000))
    took = time.monotonic() - started
    drain()
    assert engine.get_run(few).status == "succeeded"
    each = engine.get_run(many).step("each")
    assert (each.status, each.error_category) == ("dead", "validation")
    assert "this run's templates have used up their time" in (each.error_message or "")
    assert took < 10


def test_a_for_each_of_the_most_items_is_not_refused_for_time(engine: Engine, drain: Drain) -> None:
    """The largest for_each allowed (10,000 items) with three plain templates per item renders:
    the time the engine spends in the database between templates does not count against them,
    and the allowance grows with the number of templates."""
    run_id = engine.submit(
        {
            "name": "wide",
            "inputs": {"tag": {"type": "string", "default": "t"}},
            "steps": [
                {
                    "id": "each",
                    "kind": "noop",
                    "for_each": "{{ range(10000) | list }}",
                    "with": {"n": "{{ item }}", "tag": "{{ inputs.tag }}", "s": "x{{ item }}"},
                }
            ],
        }
    )
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded", run.step("each").error_message
    assert len(run.step("each").output) == 10000


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


def test_a_worker_holds_a_bounded_number_of_lines_while_the_database_is_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing listening where the database should be, flushes fail and the lines are
    kept, but only up to the limit: the rest are counted, and the step's result brings the lines
    kept and one warning saying how many were dropped."""
    monkeypatch.setattr(step_logs, "MAX_HELD", 10)
    settings = make_settings(tmp_path)
    away = create_database(settings, url=f"postgresql+psycopg://awe:x@127.0.0.1:{free_port()}/awe")
    logs = step_logs.StepLogs(away, SystemClock())
    emit = logs.emitter(token="t1", run_id="r1", step_key="chatty", masker=lambda: Masker([]))
    for n in range(30):
        emit("log", "info", f"line {n}", None)
        if n == 5:
            with pytest.raises(ConnectionFailed):
                logs.flush()
    taken = logs.take(["t1"])["t1"]
    assert [line["message"] for line in taken[:10]] == [f"line {n}" for n in range(10)]
    assert len(taken) == 11
    assert taken[-1]["level"] == "warning"
    assert taken[-1]["message"].startswith("20 log lines were dropped")
    assert logs.take(["t1"]) == {"t1": []}
