"""``kind: workflow``: child runs of stored workflows, pinned versions, failure, resume, cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.core.errors import ValidationFailed
from awe.engine.client import DeadLetterFilter, Engine
from awe.services import workflows
from awe.storage.database import Database
from tests.integration.conftest import Drain

CHILD = """\
name: child
inputs:
  who: {type: string, required: true}
steps:
  - id: greet
    kind: shell
    retry: {max_attempts: 1}
    with: {command: "test ! -e {{ inputs.who }}.broken && echo hello {{ inputs.who }}"}
outputs:
  text: "{{ steps.greet.output.stdout | trim }}"
"""


def push(database: Database, tmp_path: Path, source: str) -> int:
    """Store ``source`` as a workflow version and return the version."""
    path = tmp_path / "wf.yaml"
    path.write_text(source, encoding="utf-8")
    stored, _ = workflows.push(database, path)
    return stored.version


def parent(who: str, **with_: object) -> dict[str, object]:
    """A parent workflow: a child run of 'child', then a step that reads its outputs."""
    return {
        "name": "parent",
        "steps": [
            {
                "id": "sub",
                "kind": "workflow",
                "with": {"workflow": "child", "inputs": {"who": who}, **with_},
            },
            {
                "id": "after",
                "kind": "noop",
                "needs": ["sub"],
                "with": {"said": "{{ steps.sub.output.text }}"},
            },
        ],
    }


def child_of(engine: Engine, run_id: str) -> str:
    """The id of the child run started by run ``run_id``'s step 'sub'."""
    return engine.child_runs(run_id)["sub"].id


def test_child_run_outputs_flow_into_the_parent(
    engine: Engine, database: Database, drain: Drain, tmp_path: Path
) -> None:
    """The workflow step waits (no lease) for its child run, then its output is the child's."""
    push(database, tmp_path, CHILD)
    run_id = engine.submit(parent("ada"))
    sub = engine.get_run(run_id).step("sub")
    assert (sub.status, sub.lease_owner) == ("waiting", None)
    assert engine.get_run(run_id).status == "running"
    child_id = child_of(engine, run_id)
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("sub").output == {"text": "hello ada"}
    assert run.step("after").output == {"said": "hello ada"}
    child = engine.get_run(child_id)
    assert (child.status, child.parent_run_id, child.workflow_version) == ("succeeded", run_id, 1)


def test_a_run_keeps_the_child_version_it_was_submitted_with(
    engine: Engine, database: Database, drain: Drain, tmp_path: Path
) -> None:
    """The child's version is pinned at submit: pushing a new version later does not change it."""
    push(database, tmp_path, CHILD)
    pinned = engine.submit(parent("ada"))
    assert engine.get_run(pinned).spec["steps"][0]["with"]["version"] == 1
    assert push(database, tmp_path, CHILD.replace("echo hello", "echo goodbye")) == 2
    latest = engine.submit(parent("bob"))
    drain()
    assert engine.get_run(pinned).step("sub").output == {"text": "hello ada"}
    assert engine.get_run(latest).step("sub").output == {"text": "goodbye bob"}
    assert engine.get_run(child_of(engine, pinned)).workflow_version == 1


@pytest.fixture
def broken_run(
    engine: Engine,
    database: Database,
    drain: Drain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A parent run whose child failed (its command refuses while eve.broken exists)."""
    monkeypatch.chdir(tmp_path)
    push(database, tmp_path, CHILD)
    (tmp_path / "eve.broken").touch()
    run_id = engine.submit(parent("eve"))
    drain()
    (tmp_path / "eve.broken").unlink()  # fixed: the next attempt succeeds
    return run_id


def test_failed_child_fails_the_parent_and_resume_continues_the_same_child(
    engine: Engine, drain: Drain, broken_run: str
) -> None:
    """A failing child makes the parent step dead (child_run); resuming the parent resumes the
    child from its failed step, in the same child run, and then the parent finishes."""
    run_id = broken_run
    run = engine.get_run(run_id)
    assert run.status == "failed"
    assert run.step("sub").error_category == "child_run"
    assert run.step("after").status == "skipped"
    child_id = child_of(engine, run_id)
    dead = {(s.run_id, s.step_key) for s in engine.dead_letters()}
    assert dead == {(child_id, "greet"), (run_id, "sub")}
    engine.resume(run_id)
    drain()
    assert engine.get_run(run_id).status == "succeeded"
    assert child_of(engine, run_id) == child_id  # resumed, not started again
    greet = engine.get_run(child_id).step("greet")
    assert (greet.attempt, greet.tries) == (2, 1)  # numbering goes on; a fresh budget


def test_requeueing_the_childs_dead_step_resumes_the_parent(
    engine: Engine, drain: Drain, broken_run: str
) -> None:
    """Requeueing the child's dead step from the DLQ puts the parent step back to waiting."""
    run_id = broken_run
    child_id = child_of(engine, run_id)
    engine.requeue(where=DeadLetterFilter(run_id=child_id))
    assert engine.get_run(run_id).step("sub").status == "waiting"
    drain()
    run = engine.get_run(run_id)
    assert (run.status, run.step("after").output) == ("succeeded", {"said": "hello eve"})
    assert engine.dead_letters() == []


def test_cancelling_the_parent_cancels_the_child(
    engine: Engine, database: Database, tmp_path: Path
) -> None:
    """Cancel reaches the child run of a waiting workflow step."""
    push(database, tmp_path, CHILD)
    run_id = engine.submit(parent("ada"))
    child_id = child_of(engine, run_id)
    engine.cancel(run_id)
    assert engine.get_run(run_id).step("sub").status == "cancelled"
    child = engine.get_run(child_id)
    assert child.status == "cancelled"
    assert child.step("greet").status == "cancelled"


def test_cancelling_the_child_fails_the_parent_step(
    engine: Engine, database: Database, tmp_path: Path
) -> None:
    """A child cancelled on its own is a failure of the parent's step, which lands in the DLQ."""
    push(database, tmp_path, CHILD)
    run_id = engine.submit(parent("ada"))
    engine.cancel(child_of(engine, run_id))
    run = engine.get_run(run_id)
    assert run.status == "failed"
    assert run.step("sub").status == "dead"
    assert "cancelled" in (run.step("sub").error_message or "")


def test_unknown_workflow_and_bad_inputs_are_refused(
    engine: Engine, database: Database, tmp_path: Path
) -> None:
    """A missing stored workflow is refused at submit; wrong child inputs kill the step, named."""
    with pytest.raises(ValidationFailed, match="step 'sub': no stored workflow 'child'"):
        engine.submit(parent("ada"))
    push(database, tmp_path, CHILD)
    run_id = engine.submit(
        {
            "name": "parent",
            "steps": [
                {"id": "sub", "kind": "workflow", "with": {"workflow": "child", "inputs": {}}}
            ],
        }
    )
    run = engine.get_run(run_id)
    assert run.status == "failed"
    step = run.step("sub")
    assert step.error_category == "validation"
    assert "input 'who' is required" in (step.error_message or "")


def test_workflow_step_parameters_are_checked_before_submit(engine: Engine) -> None:
    """A workflow step without with.workflow, or with for_each, is refused with a reason."""
    with pytest.raises(ValidationFailed) as caught:
        engine.submit(
            {
                "name": "p",
                "steps": [
                    {"id": "a", "kind": "workflow", "with": {}},
                    {"id": "b", "kind": "workflow", "for_each": [1], "with": {"workflow": "x"}},
                ],
            }
        )
    message = caught.value.message
    assert "step 'a': a workflow step needs with.workflow" in message
    assert "step 'b': a workflow step cannot use for_each" in message


def test_a_dry_run_parent_makes_a_dry_run_child(
    engine: Engine, database: Database, drain: Drain, tmp_path: Path
) -> None:
    """The child run of a dry-run parent is a dry run too: its scripts see DRY_RUN=true."""
    push(database, tmp_path, CHILD.replace("echo hello", "echo $DRY_RUN"))
    run_id = engine.submit(parent("ada"), dry_run=True)
    drain()
    assert engine.get_run(run_id).step("sub").output == {"text": "true ada"}
