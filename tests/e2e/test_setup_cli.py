"""`awe setup` and `awe reset` from the shell: setup makes a fresh home ready and reports each
step, a second run changes nothing, the generated admin password is shown once and stored
nowhere; a soft reset deletes nothing of value; a full reset asks, backs up, and removes the
database and secrets but keeps the backups."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.e2e.conftest import run_awe


def mode(path: Path) -> int:
    """A file's permission bits."""
    return stat.S_IMODE(path.stat().st_mode)


def test_setup_is_idempotent_and_shows_the_password_once(tmp_path: Path) -> None:
    """First run: home and secrets 700, key 600, database at head, a CA and server
    certificate, the admin created (password on stderr only, and it logs in); second run:
    nothing changed."""
    home = tmp_path / "home"
    home.mkdir()
    done = run_awe(
        "setup", "--yes", "--json", "--with-certs", "--admin", "root@example.com", home=home
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    steps = {s["id"]: s for s in report["steps"]}
    assert steps["database"]["changed"] is True
    assert steps["admin"]["message"] == "created admin root@example.com"
    assert steps["ca"]["changed"] is True
    assert report["doctor"]["summary"]["fail"] == 0
    assert steps["runbooks"]["changed"] is True
    password = done.stderr.split("password (shown this once): ")[1].split()[0]
    assert mode(home) == 0o700
    assert mode(home / "secrets") == 0o700
    assert mode(home / "secrets" / "instance_key") == 0o600
    assert mode(home / "certs" / "server.key") == 0o600
    again = run_awe("setup", "--yes", "--json", "--with-certs", home=home)
    assert again.returncode == 0, again.stderr
    assert [s["id"] for s in json.loads(again.stdout)["steps"] if s["changed"]] == []
    history = run_awe("ops", "history", "--json", home=home).stdout
    assert '"setup"' in history
    assert password not in history
    from awe.core.config import load_settings
    from awe.services import auth
    from awe.services.audit import SYSTEM
    from awe.storage.database import create_database

    settings = load_settings(_env_file=None, home=home)
    db = create_database(settings)
    try:
        pair = auth.login(db, settings, email="root@example.com", password=password, actor=SYSTEM)
    finally:
        db.dispose()
    assert pair.access_token


def test_soft_reset_keeps_data_and_full_reset_asks_then_backs_up(tmp_path: Path) -> None:
    """A soft reset keeps the users; a full reset without --yes (no terminal) is refused and
    removes nothing; with --yes it leaves a backup and removes the database and secrets."""
    assert run_awe("setup", "--yes", "--admin", "root@example.com", home=tmp_path).returncode == 0
    soft = run_awe("reset", "--yes", "--json", home=tmp_path)
    assert soft.returncode == 0, soft.stderr
    assert "leases" in {s["id"] for s in json.loads(soft.stdout)["steps"]}
    assert "awe has users already" in soft.stdout
    refused = run_awe("reset", "--full", home=tmp_path)
    assert refused.returncode == 3
    assert (tmp_path / "awe.db").exists()
    preview = run_awe("reset", "--full", "--dry-run", home=tmp_path)
    assert preview.returncode == 10
    assert (tmp_path / "awe.db").exists()
    full = run_awe("reset", "--full", "--yes", "--json", home=tmp_path)
    assert full.returncode == 0, full.stderr
    assert not (tmp_path / "awe.db").exists()
    assert not (tmp_path / "secrets").exists()
    kept = list((tmp_path / "backups").glob("awe-backup-*.tar.gz"))
    assert len(kept) == 1


def test_install_runbooks_stores_them_once_and_a_dry_run_stores_none(tmp_path: Path) -> None:
    """`awe ops install-runbooks --dry-run` exits 10 and stores nothing; the real run stores the
    four runbooks with their schedules off; a second run stores no new version."""
    home = tmp_path / "home"
    home.mkdir()
    assert run_awe("db", "upgrade", home=home).returncode == 0
    dry = run_awe("ops", "install-runbooks", "--dry-run", home=home)
    assert dry.returncode == 10, dry.stderr
    assert json.loads(run_awe("workflows", "list", "--json", home=home).stdout) == []
    first = run_awe("ops", "install-runbooks", "--json", home=home)
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)["runbooks"]
    assert [(r["name"], r["created"], r["schedule_enabled"]) for r in made] == [
        ("awe-daily-checklist", True, False), ("awe-nightly", True, False),
        ("awe-verify", True, None), ("awe-weekly-checklist", True, False),
    ]  # fmt: skip
    again = json.loads(run_awe("ops", "install-runbooks", "--json", home=home).stdout)
    assert [r["created"] for r in again["runbooks"]] == [False] * 4
    shown = run_awe("ops", "install-runbooks", home=home).stdout
    assert "awe-nightly: v1 is up to date; schedule off (awe schedules enable awe-nightly)" in shown
