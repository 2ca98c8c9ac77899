"""Erasure of one data subject, on SQLite and PostgreSQL: planted the ways awe really stores a
person (their account with a session and a token, a failed log-in, a run's input, step data and
log lines, a stored workflow's source, a document and its vectors), they are deleted or
pseudonymized everywhere, a second search finds nothing, a bystander keeps everything, and the
receipt, the audit entry and the ledger hold no trace of the value. Hostile cases: an open run,
a value shared by two accounts, the last admin, a dry run, a restore of an older backup."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from awe.ai import pii
from awe.core.config import Settings
from awe.core.errors import AuthenticationFailed, Conflict, ValidationFailed
from awe.engine.client import Engine
from awe.ops import erasure_ledger
from awe.services import audit, auth, backups, erasure, knowledge, subject_search, tokens
from awe.services.subject_search import Subject
from awe.storage.auth_models import ApiToken, AuditEntry, AuthSession
from awe.storage.database import Database
from awe.storage.engine_models import Run, Step, Workflow
from awe.storage.knowledge_models import Chunk, Document
from awe.storage.models import User
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.integration.test_subject_search import BYSTANDER, EMAIL, plant

PASSWORD = "a long enough password"


def plant_all(database: Database, settings: Settings, drain: Drain, tmp_path: Path) -> str:
    """The subject everywhere (see test_subject_search.plant) plus a session and an API
    token; a bystander with a run and a document of their own. The subject's user id."""
    user_id = plant(database, settings, drain, tmp_path)
    auth.login(database, settings, email=EMAIL, password=PASSWORD, actor=audit.SYSTEM)
    tokens.create_api_token(database, user_id=user_id, name="laptop", days=30, actor=audit.SYSTEM)
    Engine(database).submit(
        {"name": "other", "inputs": {"to": {"type": "string"}}, "steps": [
            {"id": "greet", "kind": "shell", "with": {"command": "echo hi {{ inputs.to }}"}}]},
        {"to": BYSTANDER},
    )  # fmt: skip
    other = tmp_path / "other.txt"
    other.write_text(f"Minutes: {BYSTANDER} presented the engine.\n", encoding="utf-8")
    knowledge.add(database, settings, [other])
    drain(settings=settings)
    return user_id


def rows(database: Database, model: type, *where: object) -> int:
    """How many rows of ``model`` match."""
    with database.read() as conn:
        statement = select(func.count()).select_from(model)
        return int(conn.execute(statement.where(*where) if where else statement).scalar_one())


def audit_text(database: Database) -> str:
    """Every erasure audit entry, as text."""
    with database.read() as conn:
        entries = conn.execute(
            select(AuditEntry.target_id, AuditEntry.details).where(
                AuditEntry.action == "subject.erase")).all()  # fmt: skip
    assert entries, "the erasure wrote no audit entry"
    return json.dumps([list(e) for e in entries], default=str)


def test_delete_mode_erases_the_subject_everywhere_and_proves_it(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """Their runs (with steps and events), documents (with chunks), throttle keys, sessions,
    tokens and the account go; the audit trail, security events and workflows keep the rows
    with a pseudonym; a second search finds nothing; the bystander loses nothing; no trace of
    the address or the id in the receipt, the audit entry or the ledger."""
    user_id = plant_all(database, settings, drain, tmp_path)
    runs_before, docs_before = rows(database, Run), rows(database, Document)
    receipt = erasure.erase(database, settings, email=EMAIL, mode="delete")
    assert receipt.verified, receipt.problems
    assert receipt.remaining == {}
    assert subject_search.find(database, Subject((EMAIL,))).counts() == {}
    assert receipt.tables["runs"]["deleted"] == 1
    assert receipt.tables["steps"]["deleted"] == 1
    assert receipt.tables["documents"]["deleted"] == 1
    assert receipt.tables["users"]["deleted"] == 1
    assert rows(database, Run) == runs_before - 1
    assert rows(database, Document) == docs_before - 1
    assert rows(database, User, User.id == user_id) == 0
    assert rows(database, AuthSession, AuthSession.user_id == user_id) == 0
    assert rows(database, ApiToken, ApiToken.user_id == user_id) == 0
    assert receipt.vectors["documents"] == 1
    assert receipt.vectors["chunks"] >= 1
    assert receipt.vectors["absent"] is True
    with database.read() as conn:
        source = conn.execute(select(Workflow.source).where(Workflow.name == "notify")).scalar()
    assert source is not None
    assert f"erased-{receipt.subject}" in source
    kept = {k["what"] for k in receipt.retained}
    assert {"security_events", "workflows"} <= kept
    assert subject_search.find(database, Subject((BYSTANDER,))).counts().keys() >= {
        "runs", "steps", "documents"}  # fmt: skip
    traces = [json.dumps(receipt.as_dict(), default=str), audit_text(database),
              settings.effective_erasure_ledger.read_text()]  # fmt: skip
    for text in traces:
        assert EMAIL.lower() not in text.lower()
        assert user_id not in text


def test_pseudonymize_mode_keeps_rows_and_ends_the_account(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """Runs and their steps stay with the address replaced by erased-<hash> (the same hash as
    the receipt's); documents still go; the account is pseudonymized and deactivated, its
    sessions and tokens deleted, and logging in with the old address fails."""
    user_id = plant_all(database, settings, drain, tmp_path)
    runs_before = rows(database, Run)
    receipt = erasure.erase(database, settings, email=EMAIL, mode="pseudonymize")
    assert receipt.verified, receipt.problems
    assert rows(database, Run) == runs_before
    assert "runs" not in {t for t, d in receipt.tables.items() if d["deleted"]}
    assert receipt.tables["runs"]["pseudonymized"] == 1
    assert receipt.tables["documents"]["deleted"] == 1
    found = subject_search.find(database, Subject((f"erased-{receipt.subject}",))).counts()
    assert {"runs", "steps", "users"} <= set(found)
    with database.read() as conn:
        account = conn.execute(
            select(User.email, User.is_active, User.password_hash).where(User.id == user_id)
        ).one()
    assert account.email == f"erased-{receipt.subject}@erased.invalid"
    assert account.is_active is False
    assert account.password_hash is None
    assert rows(database, AuthSession, AuthSession.user_id == user_id) == 0
    assert rows(database, ApiToken, ApiToken.user_id == user_id) == 0
    with pytest.raises(AuthenticationFailed):
        auth.login(database, settings, email=EMAIL, password=PASSWORD, actor=audit.SYSTEM)
    assert any(k["what"] == "users" for k in receipt.retained)


def test_sealed_columns_are_erased_in_privacy_mode(
    database: Database, drain: Drain, tmp_path: Path
) -> None:
    """With AWE_PII_SCRUBBING on, run inputs, step data, workflow sources and document bytes
    are sealed; the erasure opens them to find the subject, rewrites them sealed, and the
    second search (which opens them again) finds nothing."""
    private = make_settings(tmp_path, pii_scrubbing=True)
    pii.configure(private)
    plant_all(database, private, drain, tmp_path)
    receipt = erasure.erase(database, private, email=EMAIL, mode="pseudonymize")
    assert receipt.verified, receipt.problems
    assert {"runs", "workflows", "documents"} <= set(receipt.tables)
    assert subject_search.find(database, Subject((EMAIL,))).counts() == {}


def test_an_open_run_holding_the_subject_stops_the_erasure_before_any_change(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A queued run with the address in its input: Conflict naming it, and every row that
    held the subject still holds it (nothing half-erased)."""
    plant_all(database, settings, drain, tmp_path)
    open_run = Engine(database).submit(
        {"name": "later", "inputs": {"to": {"type": "string"}},
         "steps": [{"id": "a", "kind": "noop"}]}, {"to": EMAIL},
    )  # fmt: skip
    before = subject_search.find(database, Subject((EMAIL,))).counts()
    with pytest.raises(Conflict, match=open_run):
        erasure.erase(database, settings, email=EMAIL)
    assert subject_search.find(database, Subject((EMAIL,))).counts() == before


def test_a_value_two_accounts_share_and_the_last_admin_are_refused(
    database: Database, settings: Settings
) -> None:
    """--value matching two accounts is not one person (Conflict); erasing the only active
    admin would lock everyone out (Conflict); an unknown mode is refused; nothing changes."""
    auth.create_user(database, email="ada@lovelace.example", password=PASSWORD)
    auth.create_user(database, email="byron@lovelace.example", password=PASSWORD)
    with pytest.raises(Conflict, match="2 accounts"):
        erasure.erase(database, settings, value="lovelace.example")
    admin = auth.create_user(database, email="root@admins.example", password=PASSWORD,
                             role="admin")  # fmt: skip
    with pytest.raises(Conflict, match="last active admin"):
        erasure.erase(database, settings, user=admin.id)
    with pytest.raises(ValidationFailed, match="--mode"):
        erasure.erase(database, settings, email="ada@lovelace.example", mode="shred")
    assert rows(database, User) == 3
    assert rows(database, User, User.is_active.is_(True)) == 3


def test_a_dry_run_counts_and_changes_nothing(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """The dry run's receipt says what would be deleted and kept; every row stays, and no
    ledger line is written."""
    plant_all(database, settings, drain, tmp_path)
    before = subject_search.find(database, Subject((EMAIL,))).counts()
    receipt = erasure.erase(database, settings, email=EMAIL, dry_run=True)
    assert receipt.dry_run
    assert not receipt.verified
    assert receipt.tables["runs"]["deleted"] == 1
    assert receipt.tables["users"]["deleted"] == 1
    assert subject_search.find(database, Subject((EMAIL,))).counts() == before
    assert not settings.effective_erasure_ledger.exists()


def test_the_ledger_is_private_and_opens_only_with_the_instance_key(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """The ledger file is 0600 and holds the subject only sealed; it reads back with this key;
    with another key the line is reported unreadable, not raised."""
    auth.create_user(database, email=EMAIL.lower(), password=PASSWORD)
    receipt = erasure.erase(database, settings, email=EMAIL)
    path = settings.effective_erasure_ledger
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert EMAIL.lower() not in path.read_text().lower()
    (entry,) = erasure_ledger.read(settings).entries
    assert entry.id == receipt.request_id
    assert entry.values == (EMAIL,)
    other = make_settings(tmp_path / "elsewhere", erasure_ledger=path)
    read = erasure_ledger.read(other)
    assert read.entries == []
    assert "another instance key" in read.unreadable[0]


def test_a_restore_re_applies_erasures_made_after_its_backup(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """Back up, erase, restore the backup: the restored data held the subject, and the
    restore erased them again from the ledger (by the same request id); the bystander's data
    from the backup is back."""
    plant_all(database, settings, drain, tmp_path)
    taken = backups.create(database, settings)
    receipt = erasure.erase(database, settings, email=EMAIL)
    assert receipt.backups["holding_copies"] == 1
    assert receipt.backups["oldest"] == taken.name
    plan = backups.plan_restore(database, settings, taken.path, force=False)
    result = backups.restore(database, settings, plan, take_backup=False)
    assert result["erasures"]["reapplied"] == [receipt.request_id]
    assert result["erasures"]["failed"] == []
    assert result["erasures"]["unreadable"] == []
    assert subject_search.find(database, Subject((EMAIL,))).counts() == {}
    assert subject_search.find(database, Subject((BYSTANDER,))).counts().keys() >= {"runs"}


def test_chunks_without_their_document_matching_still_take_the_document(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A chunk holding the subject belongs to its document: the document is deleted, and with
    it every chunk (no chunk rows of it remain by document or by id)."""
    letter = tmp_path / "letter.txt"
    letter.write_text(f"Dear team,\nplease write to {EMAIL} about the invoice.\n")
    knowledge.add(database, settings, [letter])
    drain(settings=settings)
    with database.read() as conn:
        (doc_id,) = conn.execute(select(Document.id)).scalars()
    receipt = erasure.erase(database, settings, value="write to")
    assert receipt.verified
    assert rows(database, Document) == 0
    assert rows(database, Chunk, Chunk.document_id == doc_id) == 0


def test_a_cancelled_run_whose_step_still_runs_is_not_settled(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A cancelled run whose step is still running on a worker (it stops at its next
    heartbeat) holds the subject: Conflict, and the run is still there to be cleaned up by
    its worker."""
    plant_all(database, settings, drain, tmp_path)
    with database.write() as conn:
        run_id = conn.execute(select(Run.id).where(Run.workflow_name == "mailer")).scalar_one()
        conn.execute(update(Run).where(Run.id == run_id).values(status="cancelled"))
        conn.execute(update(Step).where(Step.run_id == run_id).values(status="running"))
    with pytest.raises(Conflict, match="not settled"):
        erasure.erase(database, settings, email=EMAIL)
    assert rows(database, Run, Run.id == run_id) == 1
