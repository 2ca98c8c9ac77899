"""A stored workflow's ``schedule:`` becomes a schedule that runs its latest pushed version."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.core.errors import NotFound
from awe.engine.client import Engine
from awe.engine.scheduler import Scheduler
from awe.services import schedules, workflows
from awe.services.audit import SYSTEM
from awe.storage.database import Database
from awe.storage.engine_models import Schedule
from tests.integration.conftest import Drain
from tests.support.clock import ManualClock

NIGHTLY = """\
name: nightly
schedule: "0 3 * * *"
inputs:
  word: {type: string, default: v1}
steps:
  - id: say
    kind: noop
    with: {word: "{{ inputs.word }}"}
"""


def push(database: Database, tmp_path: Path, text: str) -> int:
    """Store ``text`` as the next version of its workflow; returns the version."""
    path = tmp_path / "nightly.yaml"
    path.write_text(text, encoding="utf-8")
    return workflows.push(database, path)[0].version


def test_push_creates_updates_and_removes_the_schedule(database: Database, tmp_path: Path) -> None:
    """A version with schedule: is scheduled; a newer one moves it; one without removes it."""
    push(database, tmp_path, NIGHTLY)
    (first,) = schedules.list_schedules(database)
    assert (first.name, first.cron, first.workflow_version, first.enabled) == (
        "nightly",
        "0 3 * * *",
        1,
        True,
    )
    push(database, tmp_path, NIGHTLY.replace("0 3 * * *", "30 4 * * 1"))
    (second,) = schedules.list_schedules(database)
    assert (second.id, second.cron, second.workflow_version) == (first.id, "30 4 * * 1", 2)
    push(database, tmp_path, NIGHTLY.replace('schedule: "0 3 * * *"\n', ""))
    assert schedules.list_schedules(database) == []


def test_fires_run_the_pinned_version_with_input_defaults(
    database: Database, tmp_path: Path, drain: Drain
) -> None:
    """A fire runs the version the schedule pins, with the declared defaults filled in."""
    clock = ManualClock()
    push(database, tmp_path, NIGHTLY)
    push(database, tmp_path, NIGHTLY.replace("default: v1", "default: v2"))
    scheduler = Scheduler(database, clock=clock)
    with database.write() as conn:  # bring the fire time to the manual clock's "now"
        conn.execute(Schedule.__table__.update().values(next_fire_at=clock.now()))
    assert scheduler.tick() == 1
    drain()
    (run,) = Engine(database).list_runs()
    assert (run.workflow_version, run.status) == (2, "succeeded")
    assert Engine(database).get_run(run.id).step("say").output == {"word": "v2"}


def test_disable_enable_and_trigger_by_name(
    database: Database, tmp_path: Path, drain: Drain
) -> None:
    """A paused schedule stays paused across pushes; trigger fires it at once; names are checked."""
    push(database, tmp_path, NIGHTLY)
    schedules.set_enabled(database, "nightly", enabled=False, actor=SYSTEM)
    push(database, tmp_path, NIGHTLY.replace("default: v1", "default: v3"))
    (paused,) = schedules.list_schedules(database)
    assert (paused.enabled, paused.workflow_version) == (False, 2)
    run_id = schedules.trigger(database, "nightly", actor=SYSTEM)
    drain()
    run = Engine(database).get_run(run_id)
    assert (run.status, run.step("say").output) == ("succeeded", {"word": "v3"})
    with pytest.raises(NotFound, match="no schedule 'nightlly'"):
        schedules.trigger(database, "nightlly", actor=SYSTEM)


def test_a_refused_fire_is_skipped_and_the_scheduler_goes_on(
    database: Database, tmp_path: Path
) -> None:
    """A schedule whose workflow needs an input it does not give makes no run, and neither
    stops the scheduler nor blocks the other schedules; it moves on to its next fire time."""
    clock = ManualClock()
    push(database, tmp_path, NIGHTLY.replace("default: v1", "required: true"))
    other = tmp_path / "other.yaml"
    other.write_text(NIGHTLY.replace("name: nightly", "name: other"), encoding="utf-8")
    workflows.push(database, other)
    with database.write() as conn:
        conn.execute(Schedule.__table__.update().values(next_fire_at=clock.now()))
    scheduler = Scheduler(database, clock=clock)
    assert scheduler.tick() == 1  # 'other' fired; 'nightly' was refused
    (run,) = Engine(database).list_runs()
    assert run.workflow_name == "other"
    moved = {s.name: s.next_fire_at for s in schedules.list_schedules(database)}
    assert moved["nightly"] > clock.now()
