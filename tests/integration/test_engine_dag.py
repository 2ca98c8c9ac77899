"""DAG semantics on SQLite and PostgreSQL: order, fan-out/in, failure, skips, bad specs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from awe.core.errors import ValidationFailed
from awe.engine.client import Engine
from awe.engine.errors import SpecInvalid
from awe.storage.engine_models import Run, RunEvent, Step
from tests.integration.conftest import Drain
from tests.support import kinds


def spec(*steps: dict[str, Any], name: str = "wf", **extra: Any) -> dict[str, Any]:
    """A workflow spec with ``steps``."""
    return {"name": name, "steps": list(steps), **extra}


def shell(step_id: str, command: str, **extra: Any) -> dict[str, Any]:
    """A shell step that does not retry unless told."""
    return {
        "id": step_id,
        "kind": "shell",
        "with": {"command": command},
        "retry": {"max_attempts": 1},
        **extra,
    }


def test_diamond_passes_outputs_in_order(engine: Engine, drain: Drain) -> None:
    """a → (b, c) → d: every step runs once after its needs, and templates read upstream outputs."""
    run_id = engine.submit(
        spec(
            {"id": "a", "kind": "noop", "with": {"n": "{{ inputs.n }}"}},
            {
                "id": "b",
                "kind": "noop",
                "needs": ["a"],
                "with": {"n": "{{ steps.a.output.n * 2 }}"},
            },
            {
                "id": "c",
                "kind": "noop",
                "needs": ["a"],
                "with": {"n": "{{ steps.a.output.n + 1 }}"},
            },
            {
                "id": "d",
                "kind": "noop",
                "needs": ["b", "c"],
                "with": {"sum": "{{ steps.b.output.n + steps.c.output.n }}"},
            },
            outputs={"total": "{{ steps.d.output.sum }}"},
            inputs={"n": {"type": "integer"}},
        ),
        {"n": 5},
    )
    assert drain() == 4
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.outputs == {"total": 16}
    assert [s.attempt for s in run.steps] == [1, 1, 1, 1]
    started = {s.step_key: s.started_at for s in run.steps}
    finished = {s.step_key: s.finished_at for s in run.steps}
    assert started["d"] >= max(finished["b"], finished["c"])  # type: ignore[operator]


def test_twenty_wide_fan_out_fan_in(engine: Engine, drain: Drain) -> None:
    """A 20-wide fan-out joins once, with all 20 outputs, and the join runs exactly once."""
    branches = [
        {"id": f"b{i}", "kind": "noop", "needs": ["start"], "with": {"i": i}} for i in range(20)
    ]
    join = {
        "id": "join",
        "kind": "noop",
        "needs": [b["id"] for b in branches],
        "with": {
            "all": "{{ steps | dictsort | map(attribute=1) | map(attribute='output') "
            "| selectattr('i', 'defined') | map(attribute='i') | list }}"
        },
    }
    run_id = engine.submit(spec({"id": "start", "kind": "noop"}, *branches, join))
    assert drain() == 22
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert sorted(run.step("join").output["all"]) == list(range(20))
    assert run.step("join").attempt == 1


def test_failing_branch_fails_run_and_skips_downstream(engine: Engine, drain: Drain) -> None:
    """A dead step skips what depends on it; independent branches still finish; run fails."""
    run_id = engine.submit(
        spec(
            {"id": "a", "kind": "noop"},
            shell("bad", "echo nope >&2; exit 3", needs=["a"]),
            shell("good", "echo fine", needs=["a"]),
            {"id": "after", "kind": "noop", "needs": ["bad", "good"]},
            {"id": "later", "kind": "noop", "needs": ["after"]},
        )
    )
    drain()
    run = engine.get_run(run_id)
    assert run.status == "failed"
    statuses = {s.step_key: s.status for s in run.steps}
    assert statuses == {
        "a": "succeeded",
        "bad": "dead",
        "good": "succeeded",
        "after": "skipped",
        "later": "skipped",
    }
    bad = run.step("bad")
    assert bad.error_category == "exit_code:3"
    assert "nope" in (bad.error_message or "")
    assert bad.attempt == 1


def test_failing_branch_with_continue(engine: Engine, drain: Drain) -> None:
    """on_failure: continue lets dependents run and the run succeed, the step still dead."""
    run_id = engine.submit(
        spec(
            shell("bad", "exit 5", on_failure="continue"),
            {
                "id": "after",
                "kind": "noop",
                "needs": ["bad"],
                "with": {"bad_status": "{{ steps.bad.status }}"},
            },
        )
    )
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("bad").status == "dead"
    assert run.step("after").output == {"bad_status": "dead"}


def test_skip_propagates(engine: Engine, drain: Drain) -> None:
    """A step whose when is false is skipped, and so is everything that needs it."""
    run_id = engine.submit(
        spec(
            {"id": "a", "kind": "noop"},
            {"id": "b", "kind": "noop", "needs": ["a"], "when": "{{ inputs.go }}"},
            {"id": "c", "kind": "noop", "needs": ["b"]},
            {"id": "d", "kind": "noop", "needs": ["a"], "when": "{{ not inputs.go }}"},
            inputs={"go": {"type": "boolean"}},
        ),
        {"go": False},
    )
    assert drain() == 2
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert {s.step_key: s.status for s in run.steps} == {
        "a": "succeeded",
        "b": "skipped",
        "c": "skipped",
        "d": "succeeded",
    }


def test_idempotency_key_returns_first_run(engine: Engine) -> None:
    """A second submit with the same idempotency key returns the first run, creating nothing."""
    first = engine.submit(spec({"id": "a", "kind": "noop"}), idempotency_key="order-7")
    second = engine.submit(spec({"id": "a", "kind": "noop"}), idempotency_key="order-7")
    assert first == second
    assert len(engine.list_runs()) == 1


def test_priority_orders_claims(engine: Engine, drain: Drain) -> None:
    """With one slot, the higher-priority run's step starts first."""
    low = engine.submit(spec({"id": "a", "kind": "noop"}), priority=0)
    high = engine.submit(spec({"id": "a", "kind": "noop"}), priority=10)
    drain(concurrency=1)
    assert engine.get_run(high).steps[0].started_at <= engine.get_run(low).steps[0].started_at  # type: ignore[operator]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            spec(
                {"id": "a", "kind": "noop", "needs": ["b"]},
                {"id": "b", "kind": "noop", "needs": ["a"]},
            ),
            "cycle: a -> b -> a",
        ),
        (spec({"id": "a", "kind": "nosuchkind"}), "unknown kind 'nosuchkind'"),
        (
            spec({"id": "search", "kind": "noop"}, {"id": "b", "kind": "noop", "needs": ["serch"]}),
            "needs 'serch', which is not a step id (did you mean 'search'?)",
        ),
        (spec({"id": "a", "kind": "noop"}, {"id": "a", "kind": "noop"}), "used twice"),
        (spec({"id": "a", "kind": "noop", "retry": {"max_attempts": 0}}), "max_attempts"),
        ({"name": "Bad Name", "steps": []}, "must match"),
    ],
)
def test_bad_spec_refused_and_nothing_written(
    engine: Engine, bad: dict[str, Any], expected: str
) -> None:
    """Cycles, unknown kinds and needs, duplicates, bad values: refused, and no row written."""
    with pytest.raises(SpecInvalid) as info:
        engine.submit(bad)
    assert expected in info.value.message
    assert info.value.exit_code == 3
    with engine.db.read() as conn:
        for table in (Run, Step, RunEvent):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_non_json_output_is_a_validation_failure(engine: Engine, drain: Drain) -> None:
    """A step returning something JSON cannot hold goes dead with category validation, naming it."""
    run_id = engine.submit(
        spec({"id": "a", "kind": "python", "with": {"function": "tests.support.kinds:not_json"}})
    )
    drain()
    step = engine.get_run(run_id).step("a")
    assert step.status == "dead"
    assert step.error_category == "validation"
    assert "set" in (step.error_message or "")
    assert step.attempt == 1  # not retried


def test_missing_template_variable_names_step_field_and_variable(
    engine: Engine, drain: Drain
) -> None:
    """A template reading a missing variable fails the step, naming step, field and variable."""
    run_id = engine.submit(
        spec(
            {"id": "a", "kind": "noop"},
            {"id": "b", "kind": "noop", "needs": ["a"], "with": {"q": "{{ inputs.question }}"}},
        )
    )
    drain()
    run = engine.get_run(run_id)
    step = run.step("b")
    assert step.status == "dead"
    assert step.error_category == "validation"
    assert "step b: with.q" in (step.error_message or "")
    assert "question" in (step.error_message or "")
    assert run.status == "failed"


def test_events_record_every_state_change(engine: Engine, drain: Drain) -> None:
    """run_events holds the run's and each step's transitions, in order, and shell output lines."""
    run_id = engine.submit(spec(shell("a", "echo hello; echo world")))
    drain()
    events = engine.events(run_id)
    states_seen = [(e.step_key, e.data["status"]) for e in events if e.type == "state"]  # type: ignore[index]
    assert states_seen == [
        (None, "queued"),
        ("a", "queued"),
        (None, "running"),
        ("a", "running"),
        ("a", "succeeded"),
        (None, "succeeded"),
    ]
    assert [e.message for e in events if e.type == "log"] == ["hello", "world"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert engine.events(run_id, after=events[2].id)[0].id == events[3].id


def test_for_each_fans_out_in_order(engine: Engine, drain: Drain) -> None:
    """for_each runs the kind once per item (item in templates); outputs come back in order."""
    run_id = engine.submit(
        spec(
            {"id": "list", "kind": "noop", "with": {"names": "{{ inputs.names }}"}},
            {
                "id": "greet",
                "kind": "shell",
                "needs": ["list"],
                "for_each": "{{ steps.list.output.names }}",
                "with": {"command": "echo hi {{ item }} {{ inputs.mark }}"},
            },
            outputs={"lines": "{{ steps.greet.output | map(attribute='stdout') | list }}"},
            inputs={"names": {"type": "array"}, "mark": {"type": "string"}},
        ),
        {"names": ["ada", "bob", "cy"], "mark": "!"},
    )
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.outputs == {"lines": ["hi ada !\n", "hi bob !\n", "hi cy !\n"]}
    assert [p["command"] for p in run.step("greet").input] == [
        "echo hi ada !",
        "echo hi bob !",
        "echo hi cy !",
    ]


def test_for_each_that_is_not_a_list_fails_clearly(engine: Engine, drain: Drain) -> None:
    """A for_each that renders to something other than a list is a validation failure."""
    run_id = engine.submit(
        spec(
            {"id": "a", "kind": "noop", "for_each": "{{ inputs.n }}"},
            inputs={"n": {"type": "integer"}},
        ),
        {"n": 3},
    )
    drain()
    step = engine.get_run(run_id).step("a")
    assert (step.status, step.error_category) == ("dead", "validation")
    assert "for_each must give a list, not int" in (step.error_message or "")


def test_unknown_status_filter_is_refused(engine: Engine) -> None:
    """Listing runs by a status that does not exist is an error with a suggestion, not []."""
    with pytest.raises(ValidationFailed, match="did you mean 'failed'"):
        engine.list_runs(status="faild")


def test_for_each_parallel_runs_items_at_once_in_order(engine: Engine, drain: Drain) -> None:
    """parallel: 3 runs three items of a for_each at a time; results keep the items' order."""
    kinds.peak.pop("fan", None)
    run_id = engine.submit(
        spec(
            {
                "id": "fan",
                "kind": "python",
                "for_each": list(range(9)),
                "parallel": 3,
                "with": {
                    "function": "tests.support.kinds:track_item",
                    "args": ["fan", "{{ item }}", 0.1],
                },
            }
        )
    )
    drain()
    step = engine.get_run(run_id).step("fan")
    assert step.output == list(range(9))
    assert kinds.peak["fan"] == 3


def test_dry_run_reaches_the_scripts(engine: Engine, drain: Drain) -> None:
    """A run submitted as a dry run gives its scripts DRY_RUN=true on any worker."""
    run_id = engine.submit(
        spec(shell("probe", 'echo "$DRY_RUN"; [ "$DRY_RUN" = true ] && exit 10; exit 0')),
        dry_run=True,
    )
    normal = engine.submit(spec(shell("probe", 'echo "$DRY_RUN"')))
    drain()
    dry = engine.get_run(run_id).step("probe").output
    assert (dry["stdout"], dry["dry_run"]) == ("true\n", True)
    assert engine.get_run(normal).step("probe").output["stdout"] == "false\n"
