"""AWE_PII_SCRUBBING=true: nothing unscrubbed is stored, in inputs, outputs, errors or logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from awe.ai import pii
from awe.engine.client import Engine
from awe.storage import privacy
from awe.storage.database import Database
from awe.storage.engine_models import RunEvent, Step
from tests.conftest import make_settings
from tests.integration.conftest import Drain

SPEC = {
    "name": "contact",
    "inputs": {"who": {"type": "string"}},
    "steps": [
        # Quoted: a placeholder such as <EMAIL_1> must not read as a shell redirection.
        {"id": "say", "kind": "shell", "with": {"command": 'echo "mail {{ inputs.who }}"'}},
        {
            "id": "fail",
            "kind": "shell",
            "retry": {"max_attempts": 1},
            # The number only exists in what the command prints, not in the command itself.
            "with": {"command": "printf 'card %s 1111 1111 1111' 4111 >&2; exit 3"},
        },
    ],
}


@pytest.fixture
def scrubbing(tmp_path: Path) -> Iterator[None]:
    """Scrubbing on, as AWE_PII_SCRUBBING=true does at start-up; off again afterwards."""
    pii.configure(make_settings(tmp_path, pii_scrubbing=True))
    try:
        yield
    finally:
        privacy.install(None)


def stored_text(database: Database, run_id: str) -> str:
    """Everything stored for a run's steps and events, as one string."""
    with database.read() as conn:
        steps = conn.execute(
            select(Step.input, Step.output, Step.error_message, Step.errors).where(
                Step.run_id == run_id
            )
        ).all()
        events = conn.execute(
            select(RunEvent.message, RunEvent.data).where(RunEvent.run_id == run_id)
        ).all()
    return repr([tuple(s) for s in steps]) + repr([tuple(e) for e in events])


@pytest.mark.usefixtures("scrubbing")
def test_scrubbing_on_stores_placeholders_only(
    engine: Engine, database: Database, drain: Drain
) -> None:
    """Run inputs, step inputs and outputs, error messages and logs hold placeholders."""
    run_id = engine.submit(SPEC, {"who": "ada@example.com"})
    drain()
    run = engine.get_run(run_id)
    assert run.inputs == {"who": "<EMAIL_1>"}
    assert run.step("say").output["stdout"] == "mail <EMAIL_1>\n"
    assert "<CREDIT_CARD_1>" in (run.step("fail").error_message or "")
    text = stored_text(database, run_id)
    assert "ada@example.com" not in text
    assert "4111 1111 1111 1111" not in text
    assert "<EMAIL_1>" in text


def test_scrubbing_off_stores_values_as_given(
    engine: Engine, database: Database, drain: Drain
) -> None:
    """Without AWE_PII_SCRUBBING the same run keeps its values."""
    run_id = engine.submit(SPEC, {"who": "ada@example.com"})
    drain()
    assert engine.get_run(run_id).inputs == {"who": "ada@example.com"}
    assert "4111 1111 1111 1111" in stored_text(database, run_id)
