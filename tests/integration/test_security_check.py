"""``awe security check`` on SQLite and PostgreSQL: an installation with every weakness it
knows reports each one with its fix (and fails); a careful one passes every check."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import update

from awe.core import crypto
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.services import audit, auth, secrets, security_audit, signing, tokens, workflows
from awe.services.audit import SYSTEM
from awe.storage.auth_models import ApiToken
from awe.storage.database import Database
from tests.conftest import make_settings

RISKY = """name: risky
inputs:
  host: {type: string}
steps:
  - id: ping
    kind: shell
    with:
      command: "ping -c1 {{ inputs.host }}"
  - id: report
    kind: http
    needs: [ping]
    with:
      url: http://report-bot:hunter2-pw@reports.example.com/in
      method: POST
"""
CAREFUL = """name: careful
steps:
  - id: call
    kind: shell
    with:
      command: "curl -H 'X-Key: {{ secrets.API_KEY }}' https://api.example.com"
"""


def by_id(settings: Settings, database: Database) -> dict[str, tuple[str, str, str | None]]:
    """Each check's (status, message, fix)."""
    report = security_audit.check(settings, lambda: database)
    return {c.id: (c.status, c.message, c.fix) for c in report.checks}


def test_every_known_weakness_is_reported_with_its_fix(
    database: Database, settings: Settings
) -> None:
    """Production with open registration, an admin token, a placeholder signing secret, a
    public bind without TLS, members allowed shell, a stored workflow templating input into
    a shell command and posting over http, a token unused for 100 days, a lockout."""
    weak = make_settings(
        settings.home, environment="production", registration_open=True,
        admin_token=SecretStr("admin-token-" + "a1b2c3d4e5f6g7h8i9j0k1l2m3n4"),
        jwt_secret=SecretStr("changeme-changeme-changeme-changeme"),
        host="0.0.0.0", member_kinds="noop,shell,ingest:paths",
    )  # fmt: skip
    workflows.push_source(database, RISKY, actor=SYSTEM)
    user = auth.create_user(database, email="ada@example.com", password="x" * 20, actor=SYSTEM)
    tokens.create_api_token(database, user_id=user.id, name="old laptop", days=None, actor=SYSTEM)
    with database.write() as conn:
        conn.execute(update(ApiToken).values(created_at=utcnow() - timedelta(days=100)))
    audit.security_event(database, "lockout", email="ada@example.com", ip="203.0.113.9", detail="x")
    found = by_id(weak, database)
    assert found["security.registration"][0] == "fail"
    assert found["security.admin_token"][0] == "warn"
    assert found["security.signing_secret"][0] == "fail"
    assert "placeholder" in found["security.signing_secret"][1]
    assert found["security.tls"][0] == "warn"
    assert found["security.member_kinds"][0] == "fail"
    assert "ingest:paths, shell" in found["security.member_kinds"][1]
    status, message, fix = found["security.stored_workflows"]
    assert status == "warn"
    assert "risky v1 step ping: templated input in a shell command" in message
    assert "reports.example.com over plain http" in message
    assert "hunter2-pw" not in message
    assert fix is not None
    assert "env:" in fix
    assert found["security.stale_tokens"][0] == "warn"
    assert "old laptop" in found["security.stale_tokens"][1]
    assert found["security.recent_events"][0] == "warn"
    assert "1 lockout" in found["security.recent_events"][1]


def test_a_careful_installation_passes(database: Database, settings: Settings) -> None:
    """Development defaults, a private home and secrets, a workflow that uses a secret
    reference (not input) in its command, a token used today: nothing warns or fails."""
    settings.home.chmod(0o700)
    signing.check_instance_key(database, crypto.instance_key(settings))
    secrets.set_secret(
        database, settings, project=None, name="API_KEY", value="k" * 20, actor=SYSTEM
    )
    workflows.push_source(database, CAREFUL, actor=SYSTEM)
    user = auth.create_user(database, email="ada@example.com", password="x" * 20, actor=SYSTEM)
    tokens.create_api_token(database, user_id=user.id, name="laptop", days=30, actor=SYSTEM)
    found = by_id(settings, database)
    assert {k: v for k, v in found.items() if v[0] != "pass"} == {}
