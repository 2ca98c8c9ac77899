"""Project secrets on SQLite and PostgreSQL: set over the API, used by steps, and nowhere in
clear — not in the database (its file and WAL, or any column), the events, the outputs or the
logs; masked as *** in what a step reports; a reference copied into an input is not honoured."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from awe.api.app import create_app
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.services import secrets
from awe.services.audit import SYSTEM
from awe.storage.database import Database
from tests.conftest import make_settings
from tests.integration.conftest import Drain
from tests.integration.test_pii_scrubbing import everything_stored
from tests.support.servers import HttpServer, Reply, http_server

VALUE = "sk-test-Zq8vXy2wPl4mNn7tRr5s"
ADMIN = {"Authorization": "Bearer secrets-admin-token-0123456789abcdef"}
WORKFLOW = """\
name: use-secret
steps:
  - id: call
    kind: http
    with:
      url: "{url}/api"
      headers: {{Authorization: "Bearer {{{{ secrets.API_TOKEN }}}}"}}
  - id: say
    kind: shell
    needs: [call]
    with:
      env: {{TOKEN: "{{{{ secrets.API_TOKEN }}}}"}}
      command: 'echo "token=$TOKEN"; echo "to stderr $TOKEN" >&2'
"""


@pytest.fixture
def web() -> Iterator[HttpServer]:
    """A server standing for the API the secret is for."""
    with http_server() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Steps may reach the local server; the admin token pushes the (shell) workflow."""
    return make_settings(
        tmp_path,
        http_allowed_hosts="127.0.0.1",
        admin_token=ADMIN["Authorization"][7:],
        registration_open=True,
    )


def test_a_secret_set_over_the_api_is_used_and_stored_nowhere_in_clear(
    database: Database,
    settings: Settings,
    drain: Drain,
    web: HttpServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The owner sets API_TOKEN; a run's http step sends it, its shell step gets it in its
    environment; the output, events and logs show *** where it was; the step's stored input holds
    a reference; the database holds the value nowhere in clear; listing shows the name only."""
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings, db=database)) as client:
        body = {"email": "ada@example.com", "password": "a long password here"}
        client.post("/api/v1/auth/register", json=body)
        token = client.post("/api/v1/auth/login", json=body).json()["access_token"]
        ada = {"Authorization": f"Bearer {token}"}
        assert (
            client.post("/api/v1/projects", headers=ada, json={"name": "demo"}).status_code == 201
        )
        put = client.put(
            "/api/v1/projects/demo/secrets/API_TOKEN", headers=ada, json={"value": VALUE}
        )
        assert put.status_code == 204, put.text
        listed = client.get("/api/v1/projects/demo/secrets", headers=ada).json()
        assert [s["name"] for s in listed] == ["API_TOKEN"]
        assert VALUE not in str(listed)
        pushed = client.post(
            "/api/v1/projects/demo/workflows",
            headers=ADMIN,
            json={"source": WORKFLOW.format(url=web.url)},
        )
        assert pushed.status_code == 201, pushed.text
        started = client.post(
            "/api/v1/projects/demo/runs", headers=ada, json={"workflow": "use-secret"}
        )
        run_id = started.json()["run_id"]
        drain(settings=settings)
        run = client.get(f"/api/v1/runs/{run_id}", headers=ada).json()
        events = client.get(f"/api/v1/runs/{run_id}/events", headers=ada).json()
    assert run["status"] == "succeeded", run
    assert web.seen("/api")[0].header("Authorization") == f"Bearer {VALUE}"
    steps = {s["step_key"]: s for s in run["steps"]}
    assert steps["say"]["output"]["stdout"] == "token=***\n"
    assert steps["say"]["output"]["stderr"] == "to stderr ***\n"
    assert "[[secret:API_TOKEN:" in steps["say"]["input"]["env"]["TOKEN"]
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert "token=***" in logs
    assert VALUE not in str(run) + str(events)
    assert VALUE not in everything_stored(database, tmp_path)
    assert VALUE not in caplog.text


def test_a_reference_copied_into_an_input_is_not_honoured(
    database: Database, engine: Engine, settings: Settings, drain: Drain
) -> None:
    """Text shaped like a reference, given as a run's input, stays text: only references a
    step's own template made (tagged for that step) are replaced by values."""
    secrets.set_secret(
        database, settings, project=None, name="API_TOKEN", value=VALUE, actor=SYSTEM
    )
    forged = "[[secret:API_TOKEN:0123456789abcdef]]"
    run_id = engine.submit(
        {
            "name": "forge",
            "inputs": {"text": {"type": "string"}},
            "steps": [{"id": "echo", "kind": "noop", "with": {"said": "{{ inputs.text }}"}}],
        },
        {"text": forged},
    )
    drain(settings=settings)
    assert engine.get_run(run_id).step("echo").output == {"said": forged}


def test_a_run_reading_a_missing_secret_is_refused_with_the_name(
    engine: Engine, settings: Settings
) -> None:
    """Starting a run that reads a secret the project lacks fails at once, naming the step and
    the secret and how to set it."""
    from awe.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match=r"step 'a' reads secrets.NOPE.*awe secrets set"):
        engine.submit(
            {
                "name": "x",
                "steps": [{"id": "a", "kind": "noop", "with": {"v": "{{ secrets.NOPE }}"}}],
            }
        )


def test_members_manage_only_their_own_projects_secrets(
    database: Database, settings: Settings
) -> None:
    """Another member's project's secrets are 'not found', to read, set or unset; bad names
    and empty values are refused with the rule."""
    with TestClient(create_app(settings, db=database)) as client:
        headers = []
        for email in ("a@example.com", "b@example.com"):
            body = {"email": email, "password": "a long password here"}
            client.post("/api/v1/auth/register", json=body)
            token = client.post("/api/v1/auth/login", json=body).json()["access_token"]
            headers.append({"Authorization": f"Bearer {token}"})
        a, b = headers
        client.post("/api/v1/projects", headers=a, json={"name": "alpha"})
        assert (
            client.put(
                "/api/v1/projects/alpha/secrets/K", headers=a, json={"value": "v1"}
            ).status_code
            == 204
        )
        for method, path, body_ in (
            ("GET", "/api/v1/projects/alpha/secrets", None),
            ("PUT", "/api/v1/projects/alpha/secrets/K", {"value": "mine"}),
            ("DELETE", "/api/v1/projects/alpha/secrets/K", None),
        ):
            assert client.request(method, path, headers=b, json=body_).status_code == 404
        bad = client.put(
            "/api/v1/projects/alpha/secrets/not-a-name", headers=a, json={"value": "x"}
        )
        assert bad.status_code == 422
        assert "must be an identifier" in bad.json()["detail"]
        assert client.delete("/api/v1/projects/alpha/secrets/K", headers=a).status_code == 204
        assert client.get("/api/v1/projects/alpha/secrets", headers=a).json() == []
        entries = client.get("/api/v1/audit", headers=ADMIN).json()
    actions = [e["action"] for e in entries if e["action"].startswith("secret.")]
    assert actions == ["secret.unset", "secret.set"]
    assert "v1" not in str(entries)


def test_a_value_sealed_for_one_secret_does_not_open_as_another(
    database: Database, settings: Settings, engine: Engine
) -> None:
    """Sealed values are bound to their project and name: copying one row's value into another
    secret's row gives an error, not the value."""
    from sqlalchemy import update

    from awe.core.crypto import SealBroken, instance_key
    from awe.storage import secret_store
    from awe.storage.secret_models import ProjectSecret

    secrets.set_secret(
        database, settings, project=None, name="A", value="alpha-value", actor=SYSTEM
    )
    secrets.set_secret(database, settings, project=None, name="B", value="beta-value", actor=SYSTEM)
    with database.write() as conn:
        sealed_a = (
            conn.execute(ProjectSecret.__table__.select().where(ProjectSecret.name == "A"))
            .one()
            .sealed
        )
        conn.execute(update(ProjectSecret).where(ProjectSecret.name == "B").values(sealed=sealed_a))
    with pytest.raises(SealBroken), database.read() as conn:
        secret_store.values(conn, instance_key(settings), project_key="", wanted=["B"])


def test_every_form_of_a_value_is_masked(
    database: Database, engine: Engine, settings: Settings, drain: Drain, web: HttpServer
) -> None:
    """A multi-line key (each line masked in line-by-line logs) and a key with URL-special
    characters (masked once percent-encoded in the http step's URL): none of it is shown."""
    pem = "-----BEGIN KEY-----\nAAAABBBBCCCCDDDD1111\nEEEEFFFFGGGGHHHH2222\n-----END KEY-----"
    plus = "sk+abc/def==ghi"
    secrets.set_secret(database, settings, project=None, name="PEM", value=pem, actor=SYSTEM)
    secrets.set_secret(database, settings, project=None, name="PLUS", value=plus, actor=SYSTEM)
    run_id = engine.submit(
        {
            "name": "forms",
            "steps": [
                {
                    "id": "lines",
                    "kind": "shell",
                    "with": {"env": {"K": "{{ secrets.PEM }}"}, "command": 'printf "%s\\n" "$K"'},
                },
                {
                    "id": "query",
                    "kind": "http",
                    "with": {"url": web.url + "/q", "params": {"key": "{{ secrets.PLUS }}"}},
                },
            ],
        }
    )
    drain(settings=settings)
    run = engine.get_run(run_id)
    assert run.status == "succeeded"
    shown = str(run.as_dict()) + str([e.as_dict() for e in engine.events(run_id)])
    for part in ("AAAABBBBCCCCDDDD1111", "EEEEFFFFGGGGHHHH2222", plus, "sk%2Babc%2Fdef%3D%3Dghi"):
        assert part not in shown, part
    assert "key=***" in run.step("query").output["url"]


def test_a_secret_cut_short_in_an_error_is_still_masked(
    database: Database, engine: Engine, settings: Settings, drain: Drain, web: HttpServer
) -> None:
    """A server that echoes the token back in its 403 answer, placed so that the error keeps
    only the answer's first 300 bytes and ends inside the token: the error shows neither the
    token nor its beginning, but *** where it was."""
    secrets.set_secret(database, settings, project=None, name="T", value=VALUE, actor=SYSTEM)
    web.script("/deny", Reply(status=403, body=b"denied: " + b"x" * 282 + VALUE.encode()))
    run_id = engine.submit(
        {
            "name": "echo",
            "steps": [
                {
                    "id": "call",
                    "kind": "http",
                    "with": {"url": web.url + "/deny", "headers": {"X-Key": "{{ secrets.T }}"}},
                }
            ],
        }
    )
    drain(settings=settings)
    call = engine.get_run(run_id).step("call")
    assert (call.status, call.error_category) == ("dead", "http:403")
    message = call.error_message or ""
    assert VALUE[:10] not in message, message
    assert message.endswith("x***"), message


def test_a_secret_in_a_template_rendered_apart_reaches_the_step_and_nothing_else_does(
    database: Database,
    engine: Engine,
    settings: Settings,
    drain: Drain,
    web: HttpServer,
    tmp_path: Path,
) -> None:
    """A template with a statement renders in the separate template process, which never sees
    the value: the step still sends the real secret, while text in an input shaped like a
    reference (whatever its tag) reaches the server as that text, and so does a reference the
    template made to one secret and renamed to another."""
    secrets.set_secret(database, settings, project=None, name="T", value=VALUE, actor=SYSTEM)
    other = "db-password-that-was-never-asked-for"
    secrets.set_secret(database, settings, project=None, name="DB", value=other, actor=SYSTEM)
    forged = "[[secret:T:0123456789abcdef]]"
    run_id = engine.submit(
        {
            "name": "apart",
            "inputs": {"x": {"type": "string"}},
            "steps": [
                {
                    "id": "call",
                    "kind": "http",
                    "with": {
                        "url": web.url + "/apart",
                        "headers": {
                            "X-Key": "{% if true %}Bearer {{ secrets.T }}{% endif %}",
                            "X-Echo": "{% if true %}{{ inputs.x }}{% endif %}",
                            "X-Renamed": "{% set s %}{{ secrets.T }}{% endset %}"
                            "{{ s | replace(':T:', ':DB:') }}",
                        },
                    },
                }
            ],
        },
        inputs={"x": forged},
    )
    drain(settings=settings)
    assert engine.get_run(run_id).status == "succeeded"
    seen = next(r for r in web.requests if r.path == "/apart")
    assert seen.header("X-Key") == f"Bearer {VALUE}"
    assert seen.header("X-Echo") == forged
    renamed = seen.header("X-Renamed") or ""
    assert renamed.startswith("[[secret:DB:"), renamed
    assert other not in str(web.requests)
    assert VALUE not in everything_stored(database, tmp_path)
