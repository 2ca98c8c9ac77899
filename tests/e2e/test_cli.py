"""The `awe` CLI as a subprocess: version, settings, migrations, errors a person can act on."""

from __future__ import annotations

import json
import re
from pathlib import Path

from awe.storage import migrate
from tests.e2e.conftest import awe_env, run_awe


def test_version_and_help(tmp_path: Path) -> None:
    """--version prints the version; --help lists the commands."""
    result = run_awe("--version", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("awe 0.")
    result = run_awe("--help", home=tmp_path)
    assert result.returncode == 0
    for command in ("up", "serve", "config", "db"):
        assert command in result.stdout


def test_invalid_environment_exits_3_naming_variable(tmp_path: Path) -> None:
    """ENVIRONMENT=nonsense awe config show: exit 3, one line naming the variable and choices."""
    result = run_awe("config", "show", home=tmp_path, env=awe_env(tmp_path, ENVIRONMENT="nonsense"))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ENVIRONMENT" in lines[0]
    assert "development" in lines[0]
    assert "production" in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_database_exits_4_naming_host_and_port(tmp_path: Path) -> None:
    """awe db current against a PostgreSQL that is not there exits 4 with one line naming it."""
    env = awe_env(tmp_path, DATABASE_URL="postgresql://u:p@127.0.0.1:1/x")
    result = run_awe("db", "current", home=tmp_path, env=env)
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "127.0.0.1:1" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    """With --debug the same failure shows the traceback for developers."""
    env = awe_env(tmp_path, DATABASE_URL="postgresql://u:p@127.0.0.1:1/x")
    result = run_awe("--debug", "db", "current", home=tmp_path, env=env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_config_show_masks_password(tmp_path: Path) -> None:
    """config show --json prints every setting and never the database password."""
    env = awe_env(tmp_path, DATABASE_URL="postgresql://awe:hunter2@db.internal:5432/awe")
    result = run_awe("config", "show", "--json", home=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database_url"] == "postgresql://awe:***@db.internal:5432/awe"
    assert "hunter2" not in result.stdout
    assert shown["environment"] == "development"
    result = run_awe("config", "show", home=tmp_path, env=env)
    assert result.returncode == 0
    assert "hunter2" not in result.stdout
    assert "AWE_DATABASE_URL" in result.stdout


def test_migration_commands(tmp_path: Path, db_url: str) -> None:
    """upgrade --dry-run exits 10 and changes nothing; upgrade, current, history, check succeed."""
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    assert run_awe("db", "downgrade", "base", "--yes", home=tmp_path, env=env).returncode == 0
    dry = run_awe("db", "upgrade", "--dry-run", home=tmp_path, env=env)
    assert dry.returncode == 10, dry.stderr
    assert "would apply" in dry.stderr
    current = json.loads(run_awe("db", "current", "--json", home=tmp_path, env=env).stdout)
    assert current["current"] == []
    assert not current["up_to_date"]
    check = run_awe("db", "check", home=tmp_path, env=env)
    assert check.returncode == 1
    assert "awe db upgrade" in check.stderr

    upgraded = run_awe("db", "upgrade", home=tmp_path, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Running upgrade" in upgraded.stderr
    current = json.loads(run_awe("db", "current", "--json", home=tmp_path, env=env).stdout)
    assert current["up_to_date"]
    assert current["current"] == current["heads"]
    history = json.loads(run_awe("db", "history", "--json", home=tmp_path, env=env).stdout)
    assert [h["revision"] for h in history][-1] == "0001"
    check = run_awe("db", "check", "--json", home=tmp_path, env=env)
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout) == {"ok": True, "up_to_date": True, "differences": []}


def test_default_database_lives_in_awe_home(tmp_path: Path) -> None:
    """Without DATABASE_URL, awe db upgrade creates the SQLite database at $AWE_HOME/awe.db."""
    home = tmp_path / "data"
    result = run_awe("db", "upgrade", home=tmp_path, env=awe_env(home))
    assert result.returncode == 0, result.stderr
    assert (home / "awe.db").is_file()


def test_console_log_line_format(tmp_path: Path) -> None:
    """Console logs follow '[YYYY-MM-DD HH:MM:SS] [INFO] [component] message'."""
    result = run_awe("db", "upgrade", home=tmp_path)
    assert result.returncode == 0
    line = next(x for x in result.stderr.splitlines() if "database upgraded" in x)
    assert re.match(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[INFO\] \[db\] database upgraded", line)


def test_json_logs_in_production(tmp_path: Path) -> None:
    """ENVIRONMENT=production makes every log line a JSON object."""
    result = run_awe(
        "db", "upgrade", home=tmp_path, env=awe_env(tmp_path, ENVIRONMENT="production")
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert any(r["event"] == "database upgraded" for r in records)


def test_validate_reports_located_errors_and_exits_3(tmp_path: Path) -> None:
    """awe validate prints file:line:col for every problem, exits 3, and shows no traceback."""
    good = tmp_path / "good.yaml"
    good.write_text("name: good\nsteps:\n  - {id: a, kind: noop}\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - {id: a, kind: lmm, needs: [b]}\n", encoding="utf-8")
    result = run_awe("validate", str(good), str(bad), home=tmp_path)
    assert result.returncode == 3
    assert f"{good}: ok" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{bad}:3:") for line in lines)
    assert "Traceback" not in result.stderr
    assert run_awe("validate", str(good), home=tmp_path).returncode == 0


def test_validate_prints_the_validators_words_as_they_are(tmp_path: Path) -> None:
    """Text in square brackets (a pattern, a list) reaches the terminal intact: the CLI does not
    read users' or the validator's text as console markup."""
    corpus = Path(__file__).resolve().parents[1] / "unit" / "corpus" / "bracket-words.yaml"
    result = run_awe("validate", str(corpus), home=tmp_path)
    assert result.returncode == 3
    assert "name must match [a-z0-9][a-z0-9-]* (got 'Bad_Name')" in result.stderr


def test_downgrade_asks_and_backs_up_first(tmp_path: Path, db_url: str) -> None:
    """A relative or unknown target is refused; a downgrade without --yes and no terminal is
    refused and changes nothing; --dry-run
    names what it would revert and exits 10; with --yes it backs up first (the backup is at the
    old revision) and reverts; --no-backup takes none."""
    env = awe_env(tmp_path, DATABASE_URL=db_url)
    relative = run_awe("db", "downgrade", "0010+0", "--yes", home=tmp_path, env=env)
    assert relative.returncode == 3
    assert "is not a revision" in relative.stderr
    refused = run_awe("db", "downgrade", "0009", home=tmp_path, env=env)
    assert refused.returncode == 3, refused.stderr
    assert "Pass --yes" in refused.stderr
    # Every revision after 0009, newest first (as many as the migrations folder holds now).
    versions = Path(migrate.__file__).parent / "migrations" / "versions"
    later = sorted((f.name[:4] for f in versions.glob("0*.py") if f.name[:4] > "0009"),
                   reverse=True)  # fmt: skip
    dry = run_awe("db", "downgrade", "0009", "--dry-run", home=tmp_path, env=env)
    assert dry.returncode == 10
    assert f"revert {', '.join(later)} (down to 0009)" in dry.stdout
    current = json.loads(run_awe("db", "current", "--json", home=tmp_path, env=env).stdout)
    assert current["up_to_date"]
    done = run_awe("db", "downgrade", "0009", "--yes", "--json", home=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reverted"] == later
    assert result["current"] == ["0009"]
    listed = json.loads(run_awe("backup", "list", "--json", home=tmp_path, env=env).stdout)
    assert [b["path"] for b in listed] == [result["backup_before"]]
    assert listed[0]["revision"] == later[0]
    again = run_awe("db", "downgrade", "0008", "--yes", "--no-backup", "--json",
                    home=tmp_path, env=env)  # fmt: skip
    assert json.loads(again.stdout)["backup_before"] is None
    assert len(json.loads(run_awe("backup", "list", "--json", home=tmp_path, env=env).stdout)) == 1
