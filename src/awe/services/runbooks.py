"""The runbooks shipped with awe (``awe-verify``, ``awe-nightly``, ``awe-daily-checklist``,
``awe-weekly-checklist``): stored workflows of the default project, pushed by the operator.

Installing pushes each file as its workflow's next version when it changed (so an upgrade of awe
brings the new steps, and history keeps the old). A runbook's schedule is created disabled: the
operator turns it on (``awe schedules enable awe-nightly``); one already there keeps its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from awe.services import schedules, workflows
from awe.services.audit import Actor
from awe.services.tokens import OPERATOR
from awe.storage.database import Database

FOLDER = "runbooks"


@dataclass(frozen=True)
class Installed:
    """One runbook after installing: its stored version, and what changed."""

    name: str
    version: int
    created: bool
    schedule: str | None
    schedule_enabled: bool | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dict(self.__dict__)


def shipped() -> dict[str, str]:
    """File name → YAML text of every shipped runbook, in name order."""
    folder = files("awe") / FOLDER
    found = sorted((p for p in folder.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name)
    return {p.name: p.read_text(encoding="utf-8") for p in found}


def install(db: Database, *, actor: Actor) -> list[Installed]:
    """Push every shipped runbook that changed; new schedules start disabled."""
    done: list[Installed] = []
    for file_name, source in shipped().items():
        # A schedule this makes starts off, in the same transaction: it fires only once the
        # operator turns it on (and then stays on through later installs).
        stored, created = workflows.push_source(
            db, source, name=file_name, principal=OPERATOR, actor=actor, schedule_enabled=False
        )
        name = schedules.schedule_name(stored.name, None) if stored.spec.get("schedule") else None
        now = {s.name: s.enabled for s in schedules.list_schedules(db)}
        done.append(Installed(stored.name, stored.version, created, name, now.get(name or "")))
    return done
