"""Right of access: one person's e-mail planted the ways awe really stores it (their account, a
failed log-in, a run's input, a step's output and log line, a stored workflow's source, a
document's bytes) is found in every table that holds it, sealed columns opened in privacy mode
too; a bystander is found nowhere; the audit entry names a keyed hash, not the address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from awe.ai import pii
from awe.core.config import Settings
from awe.core.errors import AuthenticationFailed, NotFound, ValidationFailed
from awe.engine.client import Engine
from awe.services import audit, auth, knowledge, subject_search, workflows
from awe.storage.auth_models import AuditEntry
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain

EMAIL = "Ada.Lovelace@example.org"
BYSTANDER = "charles.babbage@example.org"


def plant(database: Database, settings: Settings, drain: Drain, tmp_path: Path) -> str:
    """The subject everywhere awe puts a person; their user id."""
    user = auth.create_user(database, email=EMAIL.lower(), password="a long enough password")
    with pytest.raises(AuthenticationFailed):
        auth.login(database, settings, email=EMAIL, password="wrong password!",
                   actor=audit.Actor("user", ip="203.0.113.9"))  # fmt: skip
    Engine(database).submit(
        {"name": "mailer", "inputs": {"to": {"type": "string"}}, "steps": [
            {"id": "greet", "kind": "shell", "with": {"command": "echo hello {{ inputs.to }}"}}]},
        {"to": EMAIL},
    )  # fmt: skip
    source = tmp_path / "notify.yaml"
    source.write_text(
        f"# owner: {EMAIL}\nname: notify\nsteps:\n  - {{id: a, kind: noop}}\n", encoding="utf-8"
    )
    workflows.push(database, source)
    letter = tmp_path / "letter.txt"
    letter.write_text(f"Dear Ada,\nwrite to {EMAIL} with questions.\n", encoding="utf-8")
    knowledge.add(database, settings, [letter])
    drain(settings=settings)
    return user.id


EXPECTED = {"users", "security_events", "auth_throttle", "runs", "steps", "run_events",
            "workflows", "documents"}  # fmt: skip


def test_every_table_holding_the_subject_is_found(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """By e-mail (in any case) and by user id: every table above; a bystander: nothing; the
    audit entry of the search holds the keyed hash only."""
    user_id = plant(database, settings, drain, tmp_path)
    found, tag = subject_search.locate(database, settings, email=EMAIL.upper())
    assert set(found.counts()) >= EXPECTED
    assert (
        "input" in found.as_dict()["steps"]["columns"]
        or "output" in (found.as_dict()["steps"]["columns"])
    )
    by_id, _ = subject_search.locate(database, settings, user=user_id)
    assert set(by_id.counts()) >= EXPECTED
    nobody, _ = subject_search.locate(database, settings, email=BYSTANDER)
    assert nobody.counts() == {}
    with database.read() as conn:
        entries = conn.execute(
            select(AuditEntry.target_id, AuditEntry.details)
            .where(AuditEntry.action == "pii.find").order_by(AuditEntry.id)
        ).all()  # fmt: skip
    assert len(entries) == 3
    assert entries[0].target_id == tag
    assert entries[0].target_id == entries[1].target_id  # by id: the same person, the same hash
    assert entries[2].target_id != tag
    for entry in entries:
        said = f"{entry.target_id} {json.dumps(entry.details)}".lower()
        assert EMAIL.lower() not in said
        assert BYSTANDER not in said
        assert user_id not in said


def test_sealed_columns_are_opened_to_search_them(
    database: Database, drain: Drain, tmp_path: Path
) -> None:
    """In privacy mode run inputs, step data, workflow sources and document bytes are sealed
    in the database, and the search still finds the subject in them."""
    private = make_settings(tmp_path, pii_scrubbing=True)
    pii.configure(private)
    plant(database, private, drain, tmp_path)
    found, _ = subject_search.locate(database, private, email=EMAIL)
    assert set(found.counts()) >= {"runs", "steps", "workflows", "documents"}


def test_a_subject_must_be_named_once_and_precisely(database: Database, settings: Settings) -> None:
    """Two of --email/--user/--value, none, a value under 4 characters, an e-mail without @,
    and an unknown user id are refused, saying what would be right."""
    with pytest.raises(ValidationFailed, match="exactly one"):
        subject_search.locate(database, settings, email=EMAIL, value="x" * 8)
    with pytest.raises(ValidationFailed, match="exactly one"):
        subject_search.locate(database, settings)
    with pytest.raises(ValidationFailed, match="too short"):
        subject_search.locate(database, settings, value="ab")
    with pytest.raises(ValidationFailed, match="needs an e-mail address"):
        subject_search.locate(database, settings, email="ada-lovelace")
    with pytest.raises(NotFound, match="no user"):
        subject_search.locate(database, settings, user="no-such-user-id")


def test_pages_of_rows_are_read_to_the_end(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pages of 7 rows, 20 audit entries naming the subject among 30 are all found: the
    keyset paging neither skips nor repeats a row."""
    monkeypatch.setattr(subject_search, "PAGE", 7)
    with database.write() as conn:
        for n in range(30):
            audit.record(conn, audit.SYSTEM, "test.plant",
                         details={"who": EMAIL if n % 3 else "someone else", "n": n})  # fmt: skip
    found = subject_search.find(database, subject_search.Subject((EMAIL,)))
    assert found.counts()["audit_log"] == 20
    assert len(found.rows["audit_log"]["details"]) == 20
