"""The operations CLI as a user runs it: ``awe doctor`` (lines, JSON, exit codes, --strict,
--list-checks, refused names) with the real local model and embedder, and ``awe ops history``
recording every run with its exit code and masked arguments."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import awe_env, run_awe

SECRET = "a-very-long-admin-token-that-must-never-be-stored-0123456789"


def test_doctor_on_a_fresh_home_passes_with_warnings_and_says_so(tmp_path: Path) -> None:
    """After `awe db upgrade`: exit 0, one JSON report of the shared shape with the AI checks
    passing on the real local model; --strict turns the fresh home's warnings into exit 1."""
    assert run_awe("db", "upgrade", home=tmp_path).returncode == 0
    done = run_awe("doctor", "--json", home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"status", "summary", "checks"}
    assert set(report["summary"]) == {"pass", "warn", "fail", "skip"}
    checks = {c["id"]: c for c in report["checks"]}
    assert set(checks["ai.llm"]) == {
        "id",
        "group",
        "status",
        "message",
        "fix",
        "data",
        "duration_ms",
    }
    assert checks["ai.llm"]["status"] == "pass", checks["ai.llm"]
    assert checks["ai.embedder"]["data"]["dimension"] == 384
    assert report["status"] == "warn"  # a fresh home: no instance key yet, no worker
    strict = run_awe("doctor", "--strict", "--skip", "ai", home=tmp_path)
    assert strict.returncode == 1
    assert "[WARNING] [doctor] warn  secrets.instance_key" in strict.stdout
    assert "fix: awe setup" in strict.stdout


def test_doctor_refuses_unknown_names_and_lists_its_checks(tmp_path: Path) -> None:
    """A misspelt group is exit 3 with the groups that exist, no traceback; --list-checks
    names every check with its group and whether --fix repairs it."""
    wrong = run_awe("doctor", "--only", "databse", home=tmp_path)
    assert wrong.returncode == 3
    assert "no check or group called databse" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    listed = run_awe("doctor", "--list-checks", "--json", home=tmp_path)
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows["fs.permissions"] == {
        "id": "fs.permissions", "group": "filesystem",
        "title": "nothing others may write", "fixable": True,
    }  # fmt: skip
    assert rows["db.migrations"]["fixable"] is False


def test_ops_history_records_each_run_with_masked_arguments(tmp_path: Path) -> None:
    """Each doctor run is a row: command, exit code, actor, and its arguments with the value
    of a secret option and any configured secret masked; the secret is nowhere in it."""
    env = awe_env(tmp_path, AWE_ADMIN_TOKEN=SECRET)
    assert run_awe("db", "upgrade", home=tmp_path, env=env).returncode == 0
    run_awe("doctor", "--only", "database", "--json", home=tmp_path, env=env)
    run_awe("doctor", "--only", "databse", f"--skip={SECRET}", home=tmp_path, env=env)
    shown = run_awe("ops", "history", "--json", home=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [r["command"] for r in rows] == ["doctor", "doctor"]
    newest, oldest = rows
    assert oldest["exit_code"] == 0
    assert oldest["report"]["status"] in ("pass", "warn")
    assert newest["exit_code"] == 3
    assert "no check or group" in newest["error"]
    assert newest["arguments"] == ["doctor", "--only", "databse", "--skip=***"]
    assert SECRET not in shown.stdout
    assert oldest["actor"].startswith("operator:")
    table = run_awe("ops", "history", "--command", "doctor", home=tmp_path, env=env)
    assert "doctor" in table.stdout


def test_backup_commands_confirm_preview_and_record(tmp_path: Path) -> None:
    """create, list and verify --restore-test work from the shell; restore without a
    terminal and without --yes is refused (exit 3) and changes nothing, --dry-run exits 10,
    --yes restores; runs are in ops history under their command."""
    assert run_awe("db", "upgrade", home=tmp_path).returncode == 0
    made = run_awe("backup", "create", "--json", home=tmp_path)
    assert made.returncode == 0, made.stderr
    name = json.loads(made.stdout)["name"]
    assert (tmp_path / "backups" / name).stat().st_mode & 0o777 == 0o600
    checked = run_awe("backup", "verify", "latest", "--restore-test", home=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "verified" in checked.stdout
    listed = json.loads(run_awe("backup", "list", "--json", home=tmp_path).stdout)
    assert listed[0]["verified"]["ok"] is True
    refused = run_awe("backup", "restore", "latest", home=tmp_path)
    assert refused.returncode == 3
    assert "Pass --yes" in refused.stderr
    preview = run_awe("backup", "restore", "latest", "--dry-run", home=tmp_path)
    assert preview.returncode == 10
    assert "dry run: would replace" in preview.stdout
    assert len(list((tmp_path / "backups").glob("awe-backup-*.tar.gz"))) == 1
    restored = run_awe("backup", "restore", "latest", "--yes", home=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert "restored awe-backup-" in restored.stdout
    assert len(list((tmp_path / "backups").glob("awe-backup-*.tar.gz"))) == 2  # one before
    pruned = run_awe("backup", "prune", "--keep-last", "1", "--keep-days", "0", "--dry-run",
                     "--json", home=tmp_path)  # fmt: skip
    assert pruned.returncode == 10
    history = json.loads(run_awe("ops", "history", "--json", home=tmp_path).stdout)
    codes = [(r["command"], r["exit_code"]) for r in history]
    # The history is data of the database: the restore took it back to the backup's moment
    # (before its own create was recorded); the restore and what followed are recorded.
    assert codes == [("backup prune", 10), ("backup restore", 0)]  # fmt: skip


BROKEN = """name: broken
steps:
  - id: boom
    kind: shell
    retry: {max_attempts: 1}
    with:
      command: "echo 'disk full' >&2; exit 4"
"""


def test_errors_follow_top_and_explain_from_the_shell(tmp_path: Path) -> None:
    """`errors follow` prints a failure recorded after it started; `errors top` counts it;
    `errors explain RUN` prints the local model's answer under a label saying it is one."""
    import subprocess
    import time

    from tests.e2e.conftest import AWE

    assert run_awe("db", "upgrade", home=tmp_path).returncode == 0
    (tmp_path / "broken.yaml").write_text(BROKEN)
    follower = subprocess.Popen(
        [AWE, "errors", "follow", "--interval", "0.2", "--for", "60"],
        cwd=tmp_path, env=awe_env(tmp_path), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert follower.stdout is not None
    try:
        assert "following failures" in follower.stdout.readline()
        ran = run_awe("run", "broken.yaml", "--json", home=tmp_path)
        assert ran.returncode == 1
        run_id = json.loads(ran.stdout)["id"]
        deadline = time.monotonic() + 30
        seen = ""
        while run_id not in seen and time.monotonic() < deadline:
            seen += follower.stdout.readline()
        assert f"broken/boom dead [exit_code:4] run {run_id}: command exited 4: disk full" in seen
    finally:
        follower.kill()
        follower.wait()
        follower.stdout.close()
    top = json.loads(run_awe("errors", "top", "--since", "1h", "--json", home=tmp_path).stdout)
    assert [(r["key"], r["count"], r["dead"]) for r in top["rows"]] == [("exit_code:4", 1, 1)]
    wrong = run_awe("errors", "top", "--since", "yesterday", home=tmp_path)
    assert wrong.returncode == 3
    assert "use a number and s, m, h or d" in wrong.stderr
    explained = run_awe("errors", "explain", run_id, home=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert "Diagnosis by local model" in explained.stdout
    assert "an AI's guess" in explained.stdout
