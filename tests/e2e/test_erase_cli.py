"""``awe erase`` as an operator runs it: a dry run exits 10 and changes nothing; without --yes
and no terminal it refuses (exit 3); with --yes it erases, prints a verified receipt and exits
0; its record in ``awe ops history`` masks the address; a bad mode is exit 3 with what would be
right, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from awe.services import auth
from awe.services.subject_search import Subject, find
from awe.storage.database import create_database
from tests.conftest import make_settings
from tests.e2e.conftest import run_awe

EMAIL = "katherine.johnson@example.com"


def test_erase_from_the_command_line(tmp_path: Path) -> None:
    """The whole round as described above, against the real executable and a SQLite file."""
    assert run_awe("db", "upgrade", home=tmp_path).returncode == 0
    db = create_database(make_settings(tmp_path))
    try:
        auth.create_user(db, email=EMAIL, password="a long enough password")
        before = find(db, Subject((EMAIL,))).counts()
        assert before["users"] == 1
        preview = run_awe("erase", "--email", EMAIL, "--dry-run", "--json", home=tmp_path)
        assert preview.returncode == 10, preview.stdout + preview.stderr
        assert json.loads(preview.stdout)["tables"]["users"]["deleted"] == 1
        assert find(db, Subject((EMAIL,))).counts() == before
        unasked = run_awe("erase", "--email", EMAIL, home=tmp_path)
        assert unasked.returncode == 3
        assert "--yes" in unasked.stderr
        assert find(db, Subject((EMAIL,))).counts() == before
        done = run_awe("erase", "--email", EMAIL, "--yes", home=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "verified: a second search finds the subject nowhere" in done.stdout
        assert EMAIL not in done.stdout
        assert find(db, Subject((EMAIL,))).counts() == {}
        history = run_awe("ops", "history", "--command", "erase", "--json", home=tmp_path)
        assert history.returncode == 0, history.stderr
        assert EMAIL not in history.stdout
        assert len(json.loads(history.stdout)) == 3
        bad = run_awe("erase", "--email", EMAIL, "--mode", "shred", "--yes", home=tmp_path)
        assert bad.returncode == 3
        assert "is not one of: delete, pseudonymize" in bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        db.dispose()
