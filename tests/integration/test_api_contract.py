"""Contract: schemathesis drives every operation of the OpenAPI document with generated input
(a bounded number of examples each): no answer is a 5xx, and every answer matches the schema
(documented status, content type and body)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from awe.api.app import create_app
from awe.storage.database import create_database
from tests.conftest import make_settings

ADMIN = "admin-token-for-the-contract-0123456789"
WORKFLOW = "name: hello\nsteps:\n  - id: say\n    kind: noop\n"


@pytest.fixture
def api_schema(db_url: str, tmp_path: Path) -> Iterator[Any]:
    """The app's OpenAPI schema, loaded for schemathesis, on a database with data in it."""
    settings = make_settings(tmp_path, admin_token=ADMIN)
    database = create_database(settings, url=db_url)
    app = create_app(settings, db=database)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        client.post(
            "/api/v1/users",
            headers=headers,
            json={"email": "owner@example.com", "password": "a long password here"},
        )
        owner = client.get("/api/v1/users", headers=headers).json()[0]["id"]
        client.post("/api/v1/projects", headers=headers, json={"name": "demo", "owner_id": owner})
        client.post("/api/v1/projects/demo/workflows", headers=headers, json={"source": WORKFLOW})
        client.post("/api/v1/projects/demo/runs", headers=headers, json={"workflow": "hello"})
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # A live event stream only ends with its run: it has its own test (test_api_sse.py).
        yield schema.exclude(path_regex=r"/events/stream$")
    database.dispose()


def test_every_operation_keeps_its_contract(api_schema: Any) -> None:
    """Generated requests (with the admin token) to every operation get no 5xx and answers that
    match the schema; all operations are tried, and every failure is reported together."""
    failures: list[str] = []
    operations = 0
    calls: dict[int, int] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, unshrunk
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN}"},
                checks=[
                    checks.not_a_server_error,
                    openapi_checks.status_code_conformance,
                    openapi_checks.content_type_conformance,
                    openapi_checks.response_schema_conformance,
                ],
            )
            calls[response.status_code] = calls.get(response.status_code, 0) + 1

        try:
            exercise()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert operations >= 35
    assert failures == [], "\n\n".join(failures)
    assert sum(calls.values()) >= operations * 3  # many requests really went through
    assert any(200 <= status < 300 for status in calls)  # and some of them succeeded
