"""Scripts without injection: argv runs a command with no shell, shquote makes a value one shell
word; and a result the database refuses fails its own step, not the steps recorded with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from awe.engine.client import Engine
from tests.integration.conftest import Drain

HOSTILE = "x'; touch {marker}; echo '"


def test_argv_and_shquote_keep_a_hostile_value_one_argument(
    engine: Engine, drain: Drain, tmp_path: Path
) -> None:
    """An input written to break out of quoting reaches the program as one argument, through
    argv (no shell at all) and through a command with shquote; the command it hides never
    runs."""
    marker = tmp_path / "pwned"
    value = HOSTILE.format(marker=marker)
    run_id = engine.submit(
        {
            "name": "safe",
            "inputs": {"word": {"type": "string"}},
            "steps": [
                {
                    "id": "plain",
                    "kind": "shell",
                    "with": {"argv": ["printf", "%s|", "{{ inputs.word }}"]},
                },
                {
                    "id": "quoted",
                    "kind": "shell",
                    "with": {"command": "printf '%s|' {{ inputs.word | shquote }}"},
                },
            ],
        },
        {"word": value},
    )
    drain()
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    assert run.step("plain").output["stdout"] == value + "|"
    assert run.step("quoted").output["stdout"] == value + "|"
    assert not marker.exists()


def test_argv_that_cannot_start_fails_at_once(engine: Engine, drain: Drain) -> None:
    """A program that does not exist is exit_code:127, not retried."""
    run_id = engine.submit(
        {
            "name": "gone",
            "steps": [{"id": "a", "kind": "shell", "with": {"argv": ["no-such-program-here"]}}],
        }
    )
    drain()
    step = engine.get_run(run_id).step("a")
    assert (step.status, step.error_category, step.attempt) == ("dead", "exit_code:127", 1)


def test_a_result_the_database_refuses_fails_only_its_step(engine: Engine, drain: Drain) -> None:
    """Six steps finish together. One fails with a category that fits no database encoding (a
    lone surrogate): the driver refuses it on every backend, and that step alone ends dead,
    saying awe could not record its result. One fails with a category longer than its column:
    PostgreSQL refuses it (the step is dead with the database's reason), SQLite takes it as it
    is. One fails with a lone surrogate in its message: the message is stored with U+FFFD in its
    place. The other three succeed, each once."""
    steps: list[dict[str, Any]] = [
        {"id": f"ok{i}", "kind": "noop", "with": {"i": i}} for i in range(3)
    ]
    for key, function, args in (
        ("half", "lone_surrogate", {"where": "category"}),
        ("long", "long_category", {}),
        ("message", "lone_surrogate", {}),
    ):
        steps.append(
            {
                "id": key,
                "kind": "python",
                "with": {"function": f"tests.support.kinds:{function}", "kwargs": args},
            }
        )
    run_id = engine.submit({"name": "batch", "steps": steps})
    drain(concurrency=6)
    run = engine.get_run(run_id)
    for i in range(3):
        assert (run.step(f"ok{i}").status, run.step(f"ok{i}").attempt) == ("succeeded", 1)
    half = run.step("half")
    assert (half.status, half.attempt, half.error_category) == ("dead", 1, "internal")
    assert "awe could not record this step's result: UnicodeEncodeError" in (
        half.error_message or ""
    )
    message = run.step("message")
    assert (message.status, message.error_category) == ("dead", "odd")
    assert message.error_message == "half a character: \ufffd"
    long = run.step("long")
    assert (long.status, long.attempt) == ("dead", 1)
    if engine.db.is_sqlite:
        assert long.error_category == "x" * 300
    else:
        assert long.error_category == "validation"
        assert "the database refused this step's result" in (long.error_message or "")
