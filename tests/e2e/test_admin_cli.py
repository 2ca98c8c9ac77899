"""awe admin create, awe audit list and awe secrets rotate, as an operator runs them."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from tests.e2e.conftest import AWE, awe_env, run_awe


def test_admin_create_audit_list_and_rotate(tmp_path: Path) -> None:
    """A generated admin password is printed once; the creation is audited as the operator's;
    rotating the signing secret is audited too, and the instance key that seals it is a 0600
    file."""
    created = run_awe("admin", "create", "root@example.com", "--generate", home=tmp_path)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.strip().splitlines()
    assert lines[0].startswith("admin root@example.com created")
    password = lines[-1]
    assert len(password) >= 20
    entries = json.loads(run_awe("audit", "list", "--json", home=tmp_path).stdout)
    assert [(e["action"], e["actor_type"]) for e in entries] == [("user.create", "operator")]
    assert password not in json.dumps(entries)
    twice = run_awe("admin", "create", "root@example.com", "--generate", home=tmp_path)
    assert twice.returncode == 1
    assert "exists already" in twice.stderr
    assert run_awe("secrets", "rotate", home=tmp_path).returncode == 0
    assert run_awe("secrets", "rotate", home=tmp_path).returncode == 0
    key = tmp_path / "secrets" / "instance_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    rotations = json.loads(
        run_awe("audit", "list", "--action", "secrets.rotate", "--json", home=tmp_path).stdout
    )
    assert [e["actor_type"] for e in rotations] == ["operator", "operator"]
    events = json.loads(run_awe("audit", "list", "--security", "--json", home=tmp_path).stdout)
    assert events == []


def test_secrets_set_from_stdin_and_used_by_a_run(tmp_path: Path) -> None:
    """`awe secrets set` reads the value from stdin (its one trailing newline dropped), lists
    names only, and `awe run FILE` in the same default project gets it: the script's echo of it
    is masked, and the value is stored nowhere in clear."""
    value = "pipe-fed-secret-value-42"
    piped = subprocess.run(
        [AWE, "secrets", "set", "DEPLOY_TOKEN"],
        input=value + "\n",
        cwd=tmp_path,
        env=awe_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    listed = json.loads(run_awe("secrets", "list", "--json", home=tmp_path).stdout)
    assert [s["name"] for s in listed] == ["DEPLOY_TOKEN"]
    assert value not in json.dumps(listed)
    flow = tmp_path / "deploy.yaml"
    # The script checks the value's length only: the value itself must not be in the file.
    flow.write_text(
        "name: deploy\nsteps:\n  - id: go\n    kind: shell\n"
        '    with: {env: {T: "{{ secrets.DEPLOY_TOKEN }}"},'
        f" command: '[ ${{#T}} -eq {len(value)} ] && echo \"using $T\"'}}\n",
        encoding="utf-8",
    )
    run = json.loads(run_awe("run", str(flow), "--json", home=tmp_path).stdout)
    assert run["status"] == "succeeded"  # the script got exactly the value, without a newline
    assert run["steps"][0]["output"]["stdout"] == "using ***\n"
    database = (tmp_path / "awe.db").read_bytes() + (
        (tmp_path / "awe.db-wal").read_bytes() if (tmp_path / "awe.db-wal").exists() else b""
    )
    assert value.encode() not in database
    assert run_awe("secrets", "unset", "DEPLOY_TOKEN", home=tmp_path).returncode == 0
    missing = run_awe("run", str(flow), "--json", home=tmp_path)
    assert missing.returncode == 3
    assert "secrets.DEPLOY_TOKEN" in missing.stderr


def test_a_process_with_another_instance_key_is_told_at_start(tmp_path: Path) -> None:
    """Two processes on one database with different AWE_SECRET_KEY values: the second one's
    `awe config show` says MISMATCH, and its `awe worker` refuses to start (exit 3) instead of
    failing later on every secret."""
    first = awe_env(tmp_path, AWE_SECRET_KEY="k" * 40)
    assert run_awe("secrets", "rotate", home=tmp_path, env=first).returncode == 0  # records it
    other = awe_env(tmp_path, AWE_SECRET_KEY="z" * 40)
    shown = json.loads(run_awe("config", "show", "--json", home=tmp_path, env=other).stdout)
    assert shown["shared"]["instance_key"].startswith("MISMATCH")
    assert shown["secret_key"] == "***"
    worker = run_awe("worker", "--burst", home=tmp_path, env=other)
    assert worker.returncode == 3
    assert "AWE_SECRET_KEY" in worker.stderr
    same = json.loads(run_awe("config", "show", "--json", home=tmp_path, env=first).stdout)
    assert "matches the database" in same["shared"]["instance_key"]
