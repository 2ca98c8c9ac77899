"""``awe retention run`` as an operator runs it: a dry run counts per table and exits 10
having deleted nothing; the real run deletes those rows and says so; a bad age is exit 3."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from awe.core.clock import utcnow
from awe.storage.database import create_database
from tests.conftest import make_settings
from tests.e2e.conftest import run_awe
from tests.integration.test_retention import plant, remaining


def test_dry_run_counts_then_the_run_deletes(tmp_path: Path) -> None:
    """Three runs that ended 200 days ago and one from yesterday: --dry-run --json reports 3
    runs, 3 steps, 6 events and exits 10 with everything still there; the run exits 0 and
    leaves yesterday's run; --older-than 1d then takes that one too; --older-than 3x is
    refused with exit 3 and what would be right."""
    assert run_awe("db", "upgrade", home=tmp_path).returncode == 0
    db = create_database(make_settings(tmp_path))
    try:
        plant(db, 3, status="succeeded", finished=utcnow() - timedelta(days=200))
        plant(db, 1, status="failed", finished=utcnow() - timedelta(days=2))
        runs_only = ("runs", "steps", "run_events")  # each command adds its own ops record
        before = {k: remaining(db)[k] for k in runs_only}
        preview = run_awe("retention", "run", "--dry-run", "--json", home=tmp_path)
        assert preview.returncode == 10, preview.stdout + preview.stderr
        report = json.loads(preview.stdout)
        assert report["dry_run"] is True
        assert {k: report["rows"][k] for k in ("runs", "steps", "run_events")} == {
            "runs": 3, "steps": 3, "run_events": 6,
        }  # fmt: skip
        assert {k: remaining(db)[k] for k in runs_only} == before
        done = run_awe("retention", "run", home=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "runs: deleted 3" in done.stdout
        assert remaining(db)["runs"] == 1
        young = run_awe("retention", "run", "--older-than", "1d", "--json", home=tmp_path)
        assert json.loads(young.stdout)["rows"]["runs"] == 1
        assert remaining(db)["runs"] == 0
        bad = run_awe("retention", "run", "--older-than", "3x", home=tmp_path)
        assert bad.returncode == 3
        assert "use a number and s, m, h or d" in bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        db.dispose()
