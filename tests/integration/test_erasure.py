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
from sqlalchemy import delete, func, select, update

from awe.ai import pii
from awe.core.config import Settings
from awe.core.errors import AuthenticationFailed, Conflict, NotFound, ValidationFailed
from awe.engine.client import Engine
from awe.ops import erasure_ledger
from awe.services import (
    audit,
    auth,
    backups,
    erasure,
    knowledge,
    projects,
    secrets,
    subject_search,
    tokens,
)
from awe.services.subject_search import Subject
from awe.storage.auth_models import ApiToken, AuditEntry, AuthSession, SecurityEvent
from awe.storage.database import Database
from awe.storage.engine_models import Run, Step, Workflow
from awe.storage.knowledge_models import Chunk, Document
from awe.storage.models import Project, User
from awe.storage.secret_models import ProjectSecret
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.integration.test_subject_search import BYSTANDER, EMAIL, plant
from tests.support.documents import pdf_with_text

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
    assert {"runs", "steps"} <= set(found)
    with database.read() as conn:
        account = conn.execute(
            select(User.email, User.is_active, User.password_hash).where(User.id == user_id)
        ).one()
    assert account.email == f"erased-{user_id}@erased.invalid"
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
    """The dry run's receipt says what would be deleted (cascades included) and kept; every
    row stays, no ledger line is written; the real erasure then does exactly that."""
    plant_all(database, settings, drain, tmp_path)
    before = subject_search.find(database, Subject((EMAIL,))).counts()
    preview = erasure.erase(database, settings, email=EMAIL, dry_run=True)
    assert preview.tables["runs"]["deleted"] == 1
    assert preview.tables["users"]["deleted"] == 1
    assert preview.tables["steps"]["deleted"] >= 1  # what goes with the run is counted too
    assert subject_search.find(database, Subject((EMAIL,))).counts() == before
    assert not settings.effective_erasure_ledger.exists()
    assert '"dry_run": true' in audit_text(database)
    done = erasure.erase(database, settings, email=EMAIL)
    assert done.tables == preview.tables


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


def test_a_pdf_is_searched_by_its_text_not_its_compressed_bytes(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A PDF whose text stream is compressed holds no address in its bytes; the search reads
    its text, finds it, and the erasure deletes the document with every chunk."""
    content = pdf_with_text("Invoice for", EMAIL, "due in 30 days", compressed=True)
    assert EMAIL.encode() not in content
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(content)
    knowledge.add(database, settings, [pdf])
    drain(settings=settings)
    with database.read() as conn:
        (doc_id,) = conn.execute(select(Document.id)).scalars()
    assert rows(database, Chunk, Chunk.document_id == doc_id) >= 1
    assert subject_search.find(database, Subject((EMAIL,))).counts() == {"documents": 1}
    receipt = erasure.erase(database, settings, email=EMAIL)
    assert receipt.verified, receipt.problems
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


def test_a_project_owner_is_pseudonymized_and_what_names_them_by_id_stays(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """In delete mode an account that owns a project is kept pseudonymized and deactivated
    (the receipt says why); the project, its secret last set by them and an audit entry naming
    them as actor keep their rows and the id, untouched; the erasure is verified."""
    user = auth.create_user(database, email=EMAIL.lower(), password=PASSWORD)
    owner = tokens.Principal("user", user.id, "member")
    project = projects.create(database, owner, name="analytics", actor=audit.SYSTEM)
    secrets.set_secret(database, settings, project=project, name="API_KEY",
                       value="a-secret-value-1234", actor=audit.Actor("user", user.id))  # fmt: skip
    audit.record_now(database, audit.Actor("user", user.id), "test.by-id",
                     details={"note": f"changed by {user.id}"})  # fmt: skip
    receipt = erasure.erase(database, settings, email=EMAIL, mode="delete")
    assert receipt.verified, receipt.problems
    assert receipt.tables["users"] == {"deleted": 0, "pseudonymized": 1}
    (kept,) = [k for k in receipt.retained if k["what"] == "users"]
    assert "owns 1 project" in kept["why"]
    with database.read() as conn:
        assert conn.execute(select(Project.owner_id)).scalar_one() == user.id
        assert conn.execute(select(func.count()).select_from(ProjectSecret)).scalar_one() == 1
        note = conn.execute(
            select(AuditEntry.details).where(AuditEntry.action == "test.by-id")
        ).scalar_one()
    assert note == {"note": f"changed by {user.id}"}
    assert any(k["as"] == "the account's id" for k in receipt.retained)


def test_an_address_inside_a_longer_one_is_another_person(
    database: Database, settings: Settings
) -> None:
    """Erasing ann@example.org (no account) leaves joann@example.org's account and the text
    naming her; with both accounts, --email ann@… erases exactly ann's."""
    joann = auth.create_user(database, email="joann@example.org", password=PASSWORD)
    audit.record_now(database, audit.SYSTEM, "test.note", details={"to": "joann@example.org"})
    receipt = erasure.erase(database, settings, email="ann@example.org")
    assert receipt.found == {}
    assert rows(database, User, User.id == joann.id, User.is_active.is_(True)) == 1
    ann = auth.create_user(database, email="ann@example.org", password=PASSWORD)
    receipt = erasure.erase(database, settings, email="ann@example.org")
    assert receipt.verified
    assert rows(database, User, User.id == ann.id) == 0
    assert rows(database, User, User.id == joann.id, User.is_active.is_(True)) == 1
    assert subject_search.find(database, Subject(("joann@example.org",))).counts() == {
        "audit_log": 2, "users": 1}  # fmt: skip


def test_a_free_text_value_needs_the_dry_runs_count_and_never_an_id(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """--value without --expect is refused with the count to pass; a wrong count is Conflict;
    the right one erases. A value found in ids (a run's id) is refused, and
    'erased' (part of every pseudonym) too; nothing changes on a refusal."""
    plant_all(database, settings, drain, tmp_path)
    with pytest.raises(ValidationFailed, match=r"--expect \d+"):
        erasure.erase(database, settings, value="Ada.Lovelace")
    planned = erasure.erase(database, settings, value="Ada.Lovelace", dry_run=True).rows
    with pytest.raises(Conflict, match="not the 1 expected"):
        erasure.erase(database, settings, value="Ada.Lovelace", expect=1)
    with database.read() as conn:
        run_id = conn.execute(select(Run.id).where(Run.workflow_name == "other")).scalar_one()
    with pytest.raises(Conflict, match="ids or keys"):
        erasure.erase(database, settings, value=run_id, dry_run=True)
    with pytest.raises(ValidationFailed, match="erased"):
        erasure.erase(database, settings, value="erased", dry_run=True)
    receipt = erasure.erase(database, settings, value="Ada.Lovelace", expect=planned)
    assert receipt.verified, receipt.problems
    assert subject_search.find(database, Subject((EMAIL,))).counts() == {}


def test_pseudonymized_security_events_lose_their_address(
    database: Database, settings: Settings
) -> None:
    """A failed log-in's security event is kept with the pseudonym and without its IP."""
    auth.create_user(database, email=EMAIL.lower(), password=PASSWORD)
    with pytest.raises(AuthenticationFailed):
        auth.login(database, settings, email=EMAIL, password="wrong password!",
                   actor=audit.Actor("user", ip="203.0.113.9"))  # fmt: skip
    receipt = erasure.erase(database, settings, email=EMAIL, mode="pseudonymize")
    assert receipt.verified
    with database.read() as conn:
        events = conn.execute(select(SecurityEvent.email, SecurityEvent.ip)).all()
    assert events
    assert all(e.ip is None and (e.email or "").startswith("erased-") for e in events)


def test_a_ledger_erasure_runs_again_by_its_id(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """The subject written again after their erasure (a new run) is erased again by
    --from-ledger ID, with the same request id; an unknown id is NotFound."""
    plant_all(database, settings, drain, tmp_path)
    first = erasure.erase(database, settings, email=EMAIL)
    Engine(database).submit({"name": "again", "inputs": {"to": {"type": "string"}},
                             "steps": [{"id": "a", "kind": "noop"}]}, {"to": EMAIL})  # fmt: skip
    drain(settings=settings)
    again = erasure.from_ledger(database, settings, first.request_id)
    assert again.request_id == first.request_id
    assert again.tables["runs"]["deleted"] == 1
    assert again.verified
    with pytest.raises(NotFound):
        erasure.from_ledger(database, settings, "no-such-request")


def test_a_re_apply_that_cannot_run_is_reported_and_can_be_retried(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """A backup taken while a run holding the subject was still queued: the restore puts
    that open run back, so re-applying the erasure is refused and reported as failed (with
    its request id), not skipped; once the run has finished, --from-ledger erases it."""
    auth.create_user(database, email=EMAIL.lower(), password=PASSWORD)
    Engine(database).submit({"name": "queued", "inputs": {"to": {"type": "string"}},
                             "steps": [{"id": "a", "kind": "noop"}]}, {"to": EMAIL})  # fmt: skip
    taken = backups.create(database, settings)
    drain(settings=settings)
    receipt = erasure.erase(database, settings, email=EMAIL)
    assert receipt.verified
    plan = backups.plan_restore(database, settings, taken.path, force=False)
    result = backups.restore(database, settings, plan, take_backup=False)
    (failure,) = result["erasures"]["failed"]
    assert failure.startswith(receipt.request_id)
    assert "not settled" in failure
    assert result["erasures"]["reapplied"] == []
    drain(settings=settings)
    retried = erasure.from_ledger(database, settings, receipt.request_id)
    assert retried.verified
    assert subject_search.find(database, Subject((EMAIL,))).counts() == {}


def test_an_address_with_no_account_never_takes_another_account(
    database: Database, settings: Settings
) -> None:
    """--email of someone without an account, mentioned in another user's display name: that
    user keeps their account (active, same address); only the mention is replaced."""
    other = auth.create_user(database, email="grace@example.org", password=PASSWORD,
                             display_name=f"Grace (assistant to {EMAIL})")  # fmt: skip
    receipt = erasure.erase(database, settings, email=EMAIL)
    assert receipt.verified
    assert receipt.tables["users"] == {"deleted": 0, "pseudonymized": 1}
    with database.read() as conn:
        row = conn.execute(select(User.email, User.is_active, User.display_name)
                           .where(User.id == other.id)).one()  # fmt: skip
    assert row.email == "grace@example.org"
    assert row.is_active is True
    assert row.display_name == f"Grace (assistant to erased-{receipt.subject})"


def test_an_html_link_the_extractor_drops_is_still_found(
    database: Database, settings: Settings, drain: Drain, tmp_path: Path
) -> None:
    """An address only in a mailto link and a comment of an HTML document (not in its text)
    is found in the bytes, and the document is erased."""
    page = tmp_path / "contact.html"
    page.write_text(f'<html><!-- owner {EMAIL} --><body><p>Write to'
                    f' <a href="mailto:{EMAIL}">our team</a>.</p></body></html>')  # fmt: skip
    knowledge.add(database, settings, [page])
    drain(settings=settings)
    assert subject_search.find(database, Subject((EMAIL,))).counts() == {"documents": 1}
    receipt = erasure.erase(database, settings, email=EMAIL)
    assert receipt.verified
    assert rows(database, Document) == 0


def test_a_person_who_came_back_is_erased_again(database: Database, settings: Settings) -> None:
    """A project owner is erased (kept pseudonymized), signs up again with the same address,
    and is erased again: no clash on the pseudonymized address, both accounts end erased."""
    first = auth.create_user(database, email=EMAIL.lower(), password=PASSWORD)
    projects.create(database, tokens.Principal("user", first.id, "member"), name="first",
                    actor=audit.SYSTEM)  # fmt: skip
    assert erasure.erase(database, settings, email=EMAIL).verified
    second = auth.create_user(database, email=EMAIL.lower(), password=PASSWORD)
    projects.create(database, tokens.Principal("user", second.id, "member"), name="second",
                    actor=audit.SYSTEM)  # fmt: skip
    assert erasure.erase(database, settings, email=EMAIL).verified
    with database.read() as conn:
        emails = set(conn.execute(select(User.email)).scalars())
    assert emails == {f"erased-{first.id}@erased.invalid", f"erased-{second.id}@erased.invalid"}


def test_a_re_applied_address_erasure_finds_the_account_a_restore_brought_back(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """The account was gone when they were erased by address (so the ledger names no
    account); a restore of a backup from before brings the account back, and re-applying the
    erasure looks the address up again and erases that account, not only its e-mail."""
    user = auth.create_user(database, email=EMAIL.lower(), password=PASSWORD)
    taken = backups.create(database, settings)
    with database.write() as conn:
        conn.execute(delete(User).where(User.id == user.id))
    receipt = erasure.erase(database, settings, email=EMAIL)
    (entry,) = erasure_ledger.read(settings).entries
    assert entry.user_id is None
    plan = backups.plan_restore(database, settings, taken.path, force=False)
    result = backups.restore(database, settings, plan, take_backup=False)
    assert result["erasures"]["reapplied"] == [receipt.request_id]
    assert rows(database, User, User.id == user.id) == 0
