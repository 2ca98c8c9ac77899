"""The dead-letter queue's grouped counts and pages: by category, queue and the run's
workflow, within what the principal may see (a member counts only their projects' dead
steps, an admin everyone's), and the workflow filter matches the run's workflow."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from awe.engine.client import Engine
from awe.engine.listing import DeadLetterFilter
from awe.services import auth, dead_letters, projects
from awe.services import runs as run_service
from awe.services.audit import SYSTEM
from awe.services.tokens import Principal
from awe.storage.database import Database
from awe.storage.engine_models import Step
from tests.integration.conftest import Drain

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def broken(name: str, code: int) -> dict[str, object]:
    """A one-step workflow whose step dies at once with exit code ``code``."""
    return {
        "name": name,
        "steps": [
            {"id": "boom", "kind": "shell", "retry": {"max_attempts": 1},
             "with": {"command": f"exit {code}"}}
        ],
    }  # fmt: skip


def test_groups_and_pages_count_only_what_the_principal_may_see(
    database: Database, drain: Drain
) -> None:
    """Two members' projects with dead steps of their own workflows, and one of the
    operator's: each member's groups, pages and latest death cover only their project; the
    admin's cover all three workflows; the workflow filter picks one workflow's steps."""
    engine = Engine(database)
    seen: dict[str, Principal] = {}
    for email, project, flow in [("ada@example.com", "alpha", "ingest"),
                                 ("bob@example.com", "beta", "report")]:  # fmt: skip
        user = auth.create_user(database, email=email, password="x" * 20, actor=SYSTEM)
        seen[email] = Principal("user", user.id, "member")
        made = projects.create(database, seen[email], name=project, actor=SYSTEM)
        for _ in range(2):
            engine.submit(broken(flow, 3), project_id=made.id)
    engine.submit(broken("nightly", 4))
    drain()
    admin = Principal("user", "root", "admin")

    def groups(principal: Principal, workflow: str | None = None) -> list[tuple[str, ...]]:
        where = run_service.dead_filter(database, principal, None, None, workflow, None)
        return [tuple(map(str, g)) for g in dead_letters.groups(database, where)]

    assert groups(seen["ada@example.com"]) == [("exit_code:3", "default", "ingest", "2")]
    assert groups(seen["bob@example.com"]) == [("exit_code:3", "default", "report", "2")]
    assert sorted(groups(admin)) == [
        ("exit_code:3", "default", "ingest", "2"),
        ("exit_code:3", "default", "report", "2"),
        ("exit_code:4", "default", "nightly", "1"),
    ]
    assert groups(admin, "report") == [("exit_code:3", "default", "report", "2")]
    assert groups(seen["ada@example.com"], "report") == []
    where = run_service.dead_filter(database, seen["bob@example.com"], None, None, None, None)
    page = dead_letters.page(database, where)
    assert [workflow for _, workflow in page] == ["report", "report"]
    assert dead_letters.latest_death(database, where) == max(
        s.finished_at for s, _ in page if s.finished_at
    )
    nobody = run_service.dead_filter(
        database, Principal("user", "nobody", "member"), None, None, None, None
    )
    assert dead_letters.page(database, nobody) == []
    assert dead_letters.latest_death(database, nobody) is None


def test_only_a_project_filter_joins_the_dead_steps_to_their_runs() -> None:
    """The admin's view (no project filter) reads the steps alone, the workflow filter
    included; a member's view (projects given, even none) joins the runs for their project."""

    def sql(where: DeadLetterFilter) -> str:
        query = where.over(select(Step.id).select_from(Step)).where(*where.conditions(NOW))
        return str(query).lower()

    assert "runs" not in sql(DeadLetterFilter(workflow="etl", queue="q"))
    assert "join runs" in sql(DeadLetterFilter(project_ids=frozenset({"p1"})))
    assert "join runs" in sql(DeadLetterFilter(project_ids=frozenset()))
