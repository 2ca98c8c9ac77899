"""The server over real HTTP: awe up on SQLite, awe serve on PostgreSQL, problem+json errors."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from awe.api.app import create_app
from awe.core.config import Settings
from awe.engine.client import Engine
from awe.storage.database import create_database
from tests.e2e.conftest import awe_env, running_server
from tests.support.wait import wait_until


def test_up_migrates_and_answers_health(tmp_path: Path) -> None:
    """awe up on a fresh home creates the SQLite database and /api/v1/health says ok."""
    with running_server("up", home=tmp_path, env=awe_env(tmp_path)) as base:
        response = httpx.get(f"{base}/api/v1/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["database"] == "ok"
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200
        missing = httpx.get(f"{base}/api/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["status"] == 404
    assert (tmp_path / "awe.db").is_file()


def test_up_runs_submitted_work(tmp_path: Path, settings: Settings) -> None:
    """The worker inside awe up runs a run submitted to its database, with no other process."""
    with running_server("up", home=tmp_path, env=awe_env(tmp_path)):
        db = create_database(settings, url=f"sqlite:///{tmp_path / 'awe.db'}")
        try:
            engine = Engine(db)
            run_id = engine.submit(
                {
                    "name": "hello",
                    "steps": [{"id": "a", "kind": "shell", "with": {"command": "echo up"}}],
                }
            )
            wait_until(lambda: engine.get_run(run_id).status == "succeeded", what="the run")
            assert engine.get_run(run_id).step("a").output["stdout"] == "up\n"
        finally:
            db.dispose()
    # SIGTERM (sent on leaving the block) stops the in-process worker cleanly before exit.
    assert "worker stopped" in (tmp_path / "server.log").read_text()


def test_serve_on_each_backend(tmp_path: Path, db_url: str) -> None:
    """awe serve on an already-migrated SQLite or PostgreSQL database answers health."""
    with running_server("serve", home=tmp_path, env=awe_env(tmp_path, DATABASE_URL=db_url)) as base:
        assert httpx.get(f"{base}/api/v1/health").json()["status"] == "ok"


def test_health_is_503_with_reason_when_database_is_down(settings: Settings) -> None:
    """With the database unreachable, /api/v1/health answers 503 and says why."""
    broken = settings.model_copy(update={"database_url": "postgresql://u:p@127.0.0.1:1/x"})
    with TestClient(create_app(broken)) as client:
        response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "127.0.0.1:1" in body["reasons"][0]
