"""Who may run what, over real HTTP against `awe up` (SQLite and PostgreSQL): a member cannot
push shell, python or ingest-from-disk; an admin's workflow runs for the member, and its script
sees none of the worker's secrets; 50 parallel wrong passwords never answer 500."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.e2e.conftest import awe_env, first_admin, login, run_awe, running_server

PASSWORD = "a long and secret passphrase"
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdefghij"
JWT_SECRET = "e2e-jwt-secret-0123456789abcdefghijkl"
PROVIDER_KEY = "sk-e2e-provider-key-should-stay-home"
SECRET_KEY = "e2e-instance-key-0123456789abcdefghij"
SHELL = "name: {name}\nsteps:\n  - {{id: run, kind: shell, with: {{command: env}}}}\n"
PYTHON = "name: py\nsteps:\n  - {id: run, kind: python, with: {function: 'os:getcwd'}}\n"
INGEST = "name: files\nsteps:\n  - {id: read, kind: ingest, with: {paths: [/etc/passwd]}}\n"
HARMLESS = "name: quiet\nsteps:\n  - {id: a, kind: noop, with: {x: 1}}\n"


def test_members_may_not_run_code_and_scripts_see_no_worker_secrets(
    tmp_path: Path, db_url: str
) -> None:
    """Member pushes of shell, python and ingest paths: 403 naming the kind and
    AWE_MEMBER_KINDS; a harmless one is stored. The admin's shell workflow in the member's
    project: the member starts it, it runs, and `env` inside it shows no token, key, signing
    secret or database URL of the worker."""
    env = awe_env(
        tmp_path,
        DATABASE_URL=db_url,
        AWE_ADMIN_TOKEN=ADMIN_TOKEN,
        AWE_JWT_SECRET=JWT_SECRET,
        AWE_SECRET_KEY=SECRET_KEY,
        OPENAI_API_KEY=PROVIDER_KEY,
    )
    with running_server("up", home=tmp_path, env=env) as base:
        admin = first_admin(base, tmp_path, "root@example.com", PASSWORD)
        made = httpx.post(
            f"{base}/api/v1/users",
            headers=admin,
            json={"email": "mia@example.com", "password": PASSWORD},
        )
        assert made.status_code == 201, made.text
        member = login(base, "mia@example.com", PASSWORD)
        assert (
            httpx.post(f"{base}/api/v1/projects", headers=member, json={"name": "mine"}).status_code
            == 201
        )
        url = f"{base}/api/v1/projects/mine/workflows"
        for source, needed in (
            (SHELL.format(name="sh"), "'shell'"),
            (PYTHON, "'python'"),
            (INGEST, "'ingest:paths'"),
        ):
            refused = httpx.post(url, headers=member, json={"source": source})
            assert refused.status_code == 403, refused.text
            assert needed in refused.json()["detail"]
            assert "AWE_MEMBER_KINDS" in refused.json()["detail"]
        assert httpx.post(url, headers=member, json={"source": HARMLESS}).status_code == 201
        pushed = httpx.post(url, headers=admin, json={"source": SHELL.format(name="envdump")})
        assert (pushed.status_code, pushed.json()["trusted"]) == (201, True)
        started = httpx.post(
            f"{base}/api/v1/projects/mine/runs", headers=member, json={"workflow": "envdump"}
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        run = _finished(base, member, run_id)
        assert run["status"] == "succeeded", run
        dumped = run["steps"][0]["output"]["stdout"]
    names = {line.split("=", 1)[0] for line in dumped.splitlines() if "=" in line}
    assert {"PATH", "AWE_RUN_ID", "AWE_IDEMPOTENCY_KEY", "DRY_RUN"} <= names
    for leaked in ("AWE_ADMIN_TOKEN", "AWE_JWT_SECRET", "AWE_SECRET_KEY", "OPENAI_API_KEY"):
        assert leaked not in names
    assert not {"DATABASE_URL", "AWE_DATABASE_URL", "AWE_HOME"} & names
    for value in (ADMIN_TOKEN, JWT_SECRET, PROVIDER_KEY, SECRET_KEY, db_url):
        assert value not in dumped


def _finished(base: str, headers: dict[str, str], run_id: str) -> dict[str, object]:
    """The run once it has ended (its SSE stream ends with it)."""
    with httpx.stream(
        "GET", f"{base}/api/v1/runs/{run_id}/events/stream", headers=headers, timeout=60
    ) as response:
        for line in response.iter_lines():
            if line == "event: end":
                break
    found: dict[str, object] = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=headers).json()
    return found


def test_parallel_wrong_passwords_never_answer_500(tmp_path: Path, db_url: str) -> None:
    """50 wrong passwords at once against a real server: only 401s and 429s, and exactly as
    many 401s as AWE_LOGIN_MAX_FAILURES."""
    env = awe_env(tmp_path, DATABASE_URL=db_url, AWE_LOGIN_MAX_FAILURES="5")
    with running_server("up", home=tmp_path, env=env) as base:
        first_admin(base, tmp_path, "root@example.com", PASSWORD)

        def guess(n: int) -> int:
            answer = httpx.post(
                f"{base}/api/v1/auth/login",
                json={"email": "root@example.com", "password": f"wrong {n}"},
                timeout=60,
            )
            return answer.status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(guess, range(50)))
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == 5


def test_cli_changes_are_audited_as_the_operator(tmp_path: Path) -> None:
    """Pushing, running, cancelling, resuming, forking, requeueing and pausing schedules from the
    CLI are in the audit log with the operator as actor."""
    flow = tmp_path / "wf.yaml"
    flow.write_text(
        'name: wf\nschedule: "0 5 * * *"\nsteps:\n'
        "  - {id: a, kind: shell, retry: {max_attempts: 1}, with: {command: 'exit 3'}}\n",
        encoding="utf-8",
    )
    assert run_awe("workflows", "push", str(flow), home=tmp_path).returncode == 0
    failed = json.loads(run_awe("run", "wf", "--json", home=tmp_path).stdout)
    assert run_awe("runs", "fork", failed["id"], "--from", "a", home=tmp_path).returncode == 0
    assert run_awe("dlq", "requeue", "--workflow", "wf", home=tmp_path).returncode == 0
    assert run_awe("runs", "cancel", failed["id"], home=tmp_path).returncode == 0
    assert run_awe("runs", "resume", failed["id"], home=tmp_path).returncode == 0
    assert run_awe("schedules", "disable", "wf", home=tmp_path).returncode == 0
    entries = json.loads(run_awe("audit", "list", "--json", home=tmp_path).stdout)
    by_action = {e["action"]: e["actor_type"] for e in entries}
    for action in (
        "workflow.push",
        "run.fork",
        "dlq.requeue",
        "run.cancel",
        "run.resume",
        "schedule.disable",
    ):
        assert by_action.get(action) == "operator", (action, by_action)
