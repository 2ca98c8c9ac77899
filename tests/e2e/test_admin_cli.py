"""awe admin create, awe audit list and awe secrets rotate, as an operator runs them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.e2e.conftest import run_awe


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
