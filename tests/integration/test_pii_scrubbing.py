"""AWE_PII_SCRUBBING=true (privacy mode): steps get the real values, the database keeps none of
them in clear (what execution needs is sealed, every readable copy scrubbed), and scrubbing never
runs while SQLite's write lock is held."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from awe.ai import pii
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.storage import privacy
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.support.servers import Mailbox, smtp_server

WHO = "ada@example.com"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
LITERAL = "bob@example.org"  # written in the workflow itself: a spec literal
OTHER = "carol@example.net"
PLANTED = (WHO, LITERAL, OTHER, CARD, CARD.replace(" ", ""), IBAN, IBAN.replace(" ", ""))

SPEC = {
    "name": "contact",
    "inputs": {
        "who": {"type": "string"},
        "card": {"type": "string"},
        "iban": {"type": "string"},
    },
    "steps": [
        {
            "id": "mail",
            "kind": "notify",
            "with": {
                "to": "{{ inputs.who }}",
                "subject": "your card",
                "message": "card {{ inputs.card }}, copy to " + LITERAL,
            },
        },
        {"id": "say", "kind": "shell", "with": {"command": 'echo "iban {{ inputs.iban }}"'}},
        {
            "id": "fail",
            "kind": "shell",
            "retry": {"max_attempts": 1},
            "with": {"command": "printf 'card %s' '{{ inputs.card }}' >&2; exit 3"},
        },
        {"id": "pair", "kind": "noop", "with": {"people": ["{{ inputs.who }}", OTHER]}},
    ],
}
INPUTS = {"who": WHO, "card": CARD, "iban": IBAN}


@pytest.fixture
def private(tmp_path: Path) -> Iterator[tuple[Settings, Mailbox]]:
    """Privacy mode on, as AWE_PII_SCRUBBING=true does at start-up, with a real SMTP server."""
    with smtp_server() as (mailbox, port):
        settings = make_settings(
            tmp_path, pii_scrubbing=True, smtp_host="127.0.0.1", smtp_port=port
        )
        pii.configure(settings)
        yield settings, mailbox


def everything_stored(database: Database, tmp_path: Path) -> str:
    """Every byte the database holds: the SQLite file and its WAL, or every column on PostgreSQL
    read as text."""
    if database.is_sqlite:
        path = Path(str(database.url.database))
        parts = [path.read_bytes()]
        wal = path.with_name(path.name + "-wal")
        if wal.exists():
            parts.append(wal.read_bytes())
        return b"".join(parts).decode("latin-1")
    found = []
    with database.read() as conn:
        for table in inspect(conn).get_table_names():
            columns = [c["name"] for c in inspect(conn).get_columns(table)]
            for column in columns:
                # Names come from the database's own catalogue, not from input.
                query = f'SELECT "{column}"::text FROM "{table}"'  # noqa: S608
                rows = conn.execute(text(query)).scalars()
                found.extend(str(r) for r in rows if r is not None)
    return "\n".join(found)


def test_steps_get_real_values_and_nothing_is_stored_in_clear(
    engine: Engine, database: Database, drain: Drain, private: Any, tmp_path: Path
) -> None:
    """The email is delivered to the real address with the real card number; the stored run
    holds none of the planted values in clear anywhere (inputs, spec literals, outputs, logs,
    errors), and what views show is scrubbed."""
    settings, mailbox = private
    run_id = engine.submit(SPEC, INPUTS)
    drain(settings=settings)
    (mail,) = mailbox.messages
    assert mail.rcpt_tos == [WHO]
    body = message_from_bytes(mail.content).get_payload()  # type: ignore[arg-type]
    assert CARD in str(body)
    assert LITERAL in str(body)
    run = engine.get_run(run_id)
    assert run.step("say").output["stdout"] == f"iban {IBAN}\n"  # the engine reads real values
    shown = run.as_dict()
    steps = {s["step_key"]: s for s in shown["steps"]}
    assert IBAN not in steps["say"]["output"]["stdout"]
    assert "<IBAN_" in steps["say"]["output"]["stdout"]
    assert shown["inputs"]["who"].startswith("<EMAIL_")
    assert CARD not in (steps["fail"]["error_message"] or "")
    assert "<CREDIT_CARD_" in (steps["fail"]["error_message"] or "")
    stored = everything_stored(database, tmp_path)
    leaked = [value for value in PLANTED if value in stored]
    assert leaked == []
    events = " ".join(e.message + str(e.data) for e in engine.events(run_id))
    assert not [value for value in PLANTED if value in events]


def test_distinct_values_get_distinct_placeholders(
    engine: Engine, drain: Drain, private: Any
) -> None:
    """Two different addresses in one list get two placeholders; one address gets the same
    placeholder wherever it is shown (the run's input, a step's output)."""
    settings, _ = private
    run_id = engine.submit(SPEC, INPUTS)
    drain(settings=settings)
    shown = engine.get_run(run_id).as_dict()
    people = next(s for s in shown["steps"] if s["step_key"] == "pair")["output"]["people"]
    assert all(re.fullmatch(r"<EMAIL_[0-9a-f]{8}>", p) for p in people)
    assert people[0] != people[1]
    assert people[0] == shown["inputs"]["who"]


def test_scrubbing_never_holds_the_write_lock(
    engine: Engine, database: Database, drain: Drain, private: Any
) -> None:
    """Every value scrubbed while the run went through was scrubbed outside SQLite's write lock
    (the lock is for writes, scrubbing is slow)."""
    if not database.is_sqlite:
        pytest.skip("the process-wide write lock is SQLite's")
    settings, _ = private
    calls: list[bool] = []
    scrub = privacy._state.scrubber
    assert scrub is not None
    lock = database._write_lock
    assert lock is not None

    def watched(value: Any) -> Any:
        calls.append(lock._is_owned())  # type: ignore[attr-defined]
        return scrub(value)

    privacy.install(scrubber=watched, sealer=privacy._state.sealer, sealing=True)
    run_id = engine.submit(SPEC, INPUTS)
    drain(settings=settings)
    assert engine.get_run(run_id).status == "failed"  # the 'fail' step, as written
    assert calls  # logs and errors were scrubbed
    assert not any(calls)


def test_without_privacy_mode_values_are_stored_as_given(
    engine: Engine, database: Database, drain: Drain, tmp_path: Path
) -> None:
    """Without AWE_PII_SCRUBBING nothing is sealed or scrubbed: the stored input is the value."""
    run_id = engine.submit(
        {
            "name": "plain",
            "inputs": {"who": {"type": "string"}},
            "steps": [{"id": "a", "kind": "noop", "with": {"to": "{{ inputs.who }}"}}],
        },
        {"who": WHO},
    )
    drain()
    assert engine.get_run(run_id).as_dict()["inputs"] == {"who": WHO}
    assert WHO in everything_stored(database, tmp_path)
