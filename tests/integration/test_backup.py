"""Backups on SQLite and PostgreSQL, for real: a round trip restores exactly what was backed
up (users, projects, workflows, runs, documents, a project secret under its instance key, a
login token issued before); a truncated or changed archive is refused by verify and restore
and changes nothing; restore refuses while a worker is live and a backup from an unknown
migration; sealed secrets open only with their private key; prune keeps the newest verified."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from sqlalchemy import func, select

from awe.core import crypto
from awe.core.config import Settings
from awe.core.errors import Conflict, ValidationFailed
from awe.engine.client import Engine
from awe.ops import backup as archive
from awe.services import (
    auth,
    backups,
    knowledge,
    operations,
    projects,
    secrets,
    signing,
    tokens,
    workflows,
)
from awe.services.audit import SYSTEM
from awe.services.tokens import Principal
from awe.storage import migrate, secret_store
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent
from awe.storage.models import User
from tests.support.workers import live_worker

PASSWORD = "a long enough password"
FLOW = "name: hello\nsteps:\n  - id: a\n    kind: noop\n"


def fill(database: Database, settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Users, a project with a workflow, a secret, a run and a document; a login's token."""
    signing.check_instance_key(database, crypto.instance_key(settings))
    user = auth.create_user(database, email="ada@example.com", password=PASSWORD, actor=SYSTEM)
    owner = Principal("user", user.id, "member")
    project = projects.create(database, owner, name="alpha", actor=SYSTEM)
    workflows.push_source(database, FLOW, project="alpha", principal=owner, actor=SYSTEM)
    secrets.set_secret(
        database, settings, project=project, name="API_KEY", value="s3cr3t-value", actor=SYSTEM
    )
    run_id = Engine(database).submit({"name": "hello", "steps": [{"id": "a", "kind": "noop"}]})
    doc = tmp_path / "handbook.md"
    doc.write_text("Backups are tested by restoring them.")
    knowledge.add(database, settings, [doc], project="alpha")
    pair = auth.login(database, settings, email="ada@example.com", password=PASSWORD, actor=SYSTEM)
    return {"user": user.id, "project": project.id, "run": run_id, "token": pair.access_token}


def counts(database: Database) -> dict[str, int]:
    """Rows of every table."""
    with database.read() as conn:
        return archive.table_counts(conn, sorted(archive_tables(database)))


def archive_tables(database: Database) -> list[str]:
    """The tables of the schema."""
    from sqlalchemy import inspect

    with database.read() as conn:
        return inspect(conn).get_table_names()


def test_a_round_trip_restores_exactly_what_was_backed_up(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """Backup → change a user, delete every event, add a run, lose the instance key →
    restore: the same rows in every table, the user as it was, the run added later gone,
    the project secret opens with the restored key, the token issued before the backup
    authenticates, the schema matches the models, and a backup of the replaced data was
    taken first."""
    made = fill(database, settings, tmp_path)
    before = counts(database)
    taken = backups.create(database, settings)
    assert taken.manifest["tables"]["users"] == 1
    assert taken.manifest["secrets"]["included"] is True
    result = backups.verify(database, settings, taken.path, restore_test=True)
    assert result["restore_test"]["ok"] is True
    assert archive.read(taken.path).verified is not None
    with database.write() as conn:
        conn.execute(User.__table__.update().values(display_name="changed"))
        conn.execute(RunEvent.__table__.delete())
    Engine(database).submit({"name": "later", "steps": [{"id": "a", "kind": "noop"}]})
    crypto.key_path(settings).write_text("another-key-" + "x" * 40)
    plan = backups.plan_restore(database, settings, taken.path, force=False)
    done = backups.restore(database, settings, plan)
    assert done["backup_before"] is not None
    assert Path(done["backup_before"]).exists()
    assert "secrets/instance_key" in done["secrets"]
    assert done["warnings"] == []
    assert counts(database) == before
    with database.read() as conn:
        assert conn.execute(select(User.display_name)).scalar_one() == ""
        assert conn.execute(select(func.count()).select_from(Run)).scalar_one() == before["runs"]
        opened = secret_store.values(
            conn, crypto.instance_key(settings), project_key=made["project"], wanted=["API_KEY"]
        )
    assert opened == {"API_KEY": "s3cr3t-value"}
    principal = tokens.authenticate(database, settings, made["token"], ip=None)
    assert principal.user_id == made["user"]
    assert migrate.differences(database) == []
    assert not list(settings.home.rglob("*before-restore*"))  # removed: a backup holds them


def test_a_backup_from_an_older_migration_restores_and_is_brought_to_head(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """A backup taken at 0010 (before script_executions existed) restored onto a database at
    head: the table made since is dropped with the rest in the restore, then made again by
    the upgrade; the data is the backup's and the schema matches the models."""
    fill(database, settings, tmp_path)
    migrate.downgrade(database, "0010")
    taken = backups.create(database, settings)
    assert taken.manifest["revision"] == "0010"
    assert "script_executions" not in taken.manifest["tables"]
    migrate.upgrade(database)
    operations.record(
        database, command="doctor", arguments=[], actor="t", started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC), exit_code=0,
    )  # fmt: skip
    plan = backups.plan_restore(database, settings, taken.path, force=False)
    done = backups.restore(database, settings, plan)
    assert done["revision"] == "0010"
    assert done["upgraded_to"] == migrate.status(database).heads[0]
    assert migrate.differences(database) == []
    assert operations.history(database) == []
    assert counts(database)["users"] == 1


def test_a_damaged_archive_is_refused_and_nothing_changes(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """A truncated archive and one with a changed database file are refused by verify and by
    restore with the reason; the data stays as it was."""
    fill(database, settings, tmp_path)
    taken = backups.create(database, settings)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(taken.path.read_bytes()[:-600])
    changed = tmp_path / "changed.tar.gz"
    raw = io.BytesIO(gzip.decompress(taken.path.read_bytes()))
    out = io.BytesIO()
    with tarfile.open(fileobj=raw) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("database/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data))
    changed.write_bytes(gzip.compress(out.getvalue()))
    before = counts(database)
    Engine(database).submit({"name": "after", "steps": [{"id": "a", "kind": "noop"}]})
    after = counts(database)
    for bad, reason in [
        (truncated, "damaged or truncated|lacks"),
        (changed, "does not match its checksum"),
    ]:
        with pytest.raises(ValidationFailed, match=reason):
            backups.verify(database, settings, bad, restore_test=False)
        with pytest.raises(ValidationFailed, match=reason):
            backups.plan_restore(database, settings, bad, force=True)
        unchecked = backups.RestorePlan(bad, taken.manifest, 0)  # as if planned before the damage
        with pytest.raises(ValidationFailed, match=reason):
            backups.restore(database, settings, unchecked, take_backup=False)
    assert counts(database) == after != before


def test_restore_refuses_live_workers_and_unknown_migrations(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """With a worker heartbeating, restore is refused unless forced; a backup whose manifest
    names a migration this awe does not know is refused even when forced."""
    fill(database, settings, tmp_path)
    taken = backups.create(database, settings)
    with live_worker(database, ["default"]):
        with pytest.raises(Conflict, match="worker"):
            backups.plan_restore(database, settings, taken.path, force=False)
        assert backups.plan_restore(database, settings, taken.path, force=True).live_workers == 1
    newer = tmp_path / "newer.tar.gz"
    with tarfile.open(taken.path, "r:gz") as src, tarfile.open(newer, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == archive.MANIFEST:
                data = json.dumps({**json.loads(data), "revision": "9999"}).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(ValidationFailed, match="does not know"):
        backups.plan_restore(database, settings, newer, force=True)


def test_sealed_secrets_open_only_with_their_private_key(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """Secrets sealed to a public key: the archive holds no clear instance key; restore
    without a key, or with another key, is refused before anything changes; with the right
    one the secrets come back."""
    fill(database, settings, tmp_path)
    keys = {}
    for name in ("right", "wrong"):
        private = x25519.X25519PrivateKey.generate()
        pem = serialization.Encoding.PEM
        (tmp_path / f"{name}.key").write_bytes(
            private.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (tmp_path / f"{name}.pub").write_bytes(
            private.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        keys[name] = tmp_path / f"{name}.key"
    key_text = crypto.key_path(settings).read_bytes()
    taken = backups.create(database, settings, encrypt_to=tmp_path / "right.pub")
    assert taken.manifest["secrets"]["encrypted"] is True
    assert key_text not in gzip.decompress(taken.path.read_bytes())
    plan = backups.plan_restore(database, settings, taken.path, force=False)
    with pytest.raises(ValidationFailed, match="--decrypt-with"):
        backups.restore(database, settings, plan, take_backup=False)
    with pytest.raises(ValidationFailed, match="sealed to key"):
        backups.restore(database, settings, plan, take_backup=False, private_key=keys["wrong"])
    crypto.key_path(settings).write_text("lost-" + "y" * 40)
    done = backups.restore(database, settings, plan, take_backup=False, private_key=keys["right"])
    assert "secrets/instance_key" in done["secrets"]
    assert crypto.key_path(settings).read_bytes() == key_text


def test_prune_keeps_the_newest_and_the_newest_verified(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    """Four backups a day apart, the second oldest restore-tested: keep-last 1 and keep-days
    0 delete the two others, keep the newest and the verified one; a dry run deletes none."""
    signing.check_instance_key(database, crypto.instance_key(settings))
    now = datetime.now(UTC)
    made = [
        archive.create(database, settings, now=now - timedelta(days=d), secrets=False)
        for d in (4, 3, 2, 1)
    ]
    archive.mark_verified(made[1], {"ok": True})
    drop, _ = backups.prune(settings, keep_last=1, keep_days=0, dry_run=True)
    assert {b.name for b in drop} == {made[0].name, made[2].name}
    assert all(b.path.exists() for b in made)
    backups.prune(settings, keep_last=1, keep_days=0, dry_run=False)
    assert [b.path.exists() for b in made] == [False, True, False, True]
