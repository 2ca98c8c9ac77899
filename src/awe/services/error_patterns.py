"""Error patterns from what the database already holds (``awe errors``): every failed attempt
is a state event carrying its category and message, so counting needs no log files.

``top`` groups the failed attempts of a time window by category, workflow or step; ``follow``
reads new ones as they are written; ``explain`` asks the configured LLM for a diagnosis of
one failed step, from its error, definition and last log lines, scrubbed of PII first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select

from awe.ai import pii
from awe.ai.llm import ChatRequest, get_provider
from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.errors import NotFound, ValidationFailed
from awe.engine import states
from awe.storage.database import Database
from awe.storage.engine_models import Run, RunEvent, Step

By = Literal["category", "workflow", "step"]
#: Failed attempts read for one report, at most (the newest).
SCAN_LIMIT = 100_000
LOG_LINES = 20
#: What a failed attempt became: tried again, or dead (a failure of a step whose run was being
#: cancelled ends 'cancelled': not counted).
_FAILED = ("retrying", states.DEAD)
#: How far back a follower re-reads: an event numbered before one it has seen may commit later.
FOLLOW_WINDOW = timedelta(seconds=120)


@dataclass(frozen=True)
class ErrorEvent:
    """One failed attempt."""

    id: int
    at: datetime
    run_id: str
    workflow: str
    step: str | None
    status: str
    category: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**self.__dict__, "at": self.at.isoformat()}


def _query() -> Any:
    return (
        select(
            RunEvent.id,
            RunEvent.created_at,
            RunEvent.run_id,
            RunEvent.step_key,
            RunEvent.data,
            RunEvent.message,
            Run.workflow_name,
        )
        .join(Run, Run.id == RunEvent.run_id)
        .where(RunEvent.type == "state", RunEvent.level.in_(["warning", "error"]))
    )


def _event(row: Any) -> ErrorEvent | None:
    data = row.data or {}
    if "category" not in data or data.get("status") not in _FAILED:
        return None
    return ErrorEvent(
        id=int(row.id), at=row.created_at, run_id=str(row.run_id), workflow=str(row.workflow_name),
        step=row.step_key, status=str(data.get("status") or row.message or ""),
        category=str(data.get("category") or "unknown"), message=str(data.get("error") or ""),
    )  # fmt: skip


def _window(db: Database, since: timedelta) -> tuple[list[ErrorEvent], bool]:
    """Failed attempts of the last ``since``, newest first (of the newest SCAN_LIMIT events),
    and whether the window held more events than that."""
    with db.read() as conn:
        rows = conn.execute(
            _query()
            .where(RunEvent.created_at >= utcnow() - since)
            .order_by(RunEvent.id.desc())
            .limit(SCAN_LIMIT + 1)
        ).all()
    events = [e for e in map(_event, rows[:SCAN_LIMIT]) if e is not None]
    return events, len(rows) > SCAN_LIMIT


def top(db: Database, *, since: timedelta, by: By, limit: int = 20) -> dict[str, Any]:
    """The most frequent patterns (key, count, dead, first and last time, one example), and
    whether the window held more failure events than were read (then counts are a floor)."""
    if by not in ("category", "workflow", "step"):
        raise ValidationFailed(f"--by {by!r}: give category, workflow or step")
    found, truncated = _window(db, since)
    groups: dict[str, list[ErrorEvent]] = {}
    for e in found:
        name = {"category": e.category, "workflow": e.workflow}.get(by, f"{e.workflow}/{e.step}")
        groups.setdefault(name, []).append(e)
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))[:limit]
    rows = [
        {
            "key": name,
            "count": len(mine),
            "first_at": mine[-1].at.isoformat(),
            "last_at": mine[0].at.isoformat(),
            "example": mine[0].message.splitlines()[0][:200] if mine[0].message else "",
            "dead": sum(1 for e in mine if e.status == states.DEAD),
        }
        for name, mine in ranked
    ]
    return {"rows": rows, "truncated": truncated, "scan_limit": SCAN_LIMIT}


class Follower:
    """Reads failed attempts as they are recorded. Event ids are given at insert, not commit,
    so one numbered below an event already seen may commit later: each read looks back
    :data:`FOLLOW_WINDOW` by time and skips the ids it has shown."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.started = utcnow()
        self.seen: dict[int, datetime] = {}

    def poll(self, *, limit: int = 1000) -> list[ErrorEvent]:
        """What was recorded since the last poll (and after the follower started), in order."""
        now = utcnow()
        since = max(self.started, now - FOLLOW_WINDOW)
        with self.db.read() as conn:
            rows = conn.execute(
                _query().where(RunEvent.created_at >= since).order_by(RunEvent.id).limit(limit)
            ).all()
        fresh = []
        for row in rows:
            if int(row.id) in self.seen:
                continue
            self.seen[int(row.id)] = row.created_at
            event = _event(row)
            if event is not None:
                fresh.append(event)
        self.seen = {i: at for i, at in self.seen.items() if at >= since}
        return fresh


def _failed_step(db: Database, ref: str) -> Any:
    with db.read() as conn:
        step = conn.execute(select(Step).where(Step.id == ref)).first()
        if step is None:
            step = conn.execute(
                select(Step)
                .where(Step.run_id == ref, Step.error_message.is_not(None))
                .order_by(Step.finished_at.desc().nulls_last())
                .limit(1)
            ).first()
        if step is None:
            raise NotFound(f"no failed step with id {ref}, and no run {ref} with a failed step")
        logs = (
            conn.execute(
                select(RunEvent.message)
                .where(
                    RunEvent.run_id == step.run_id,
                    RunEvent.step_key == step.step_key,
                    RunEvent.type == "log",
                )
                .order_by(RunEvent.id.desc())
                .limit(LOG_LINES)
            )
            .scalars()
            .all()
        )
    return step, list(reversed(logs))


def explain(
    db: Database, settings: Settings, ref: str, *, provider: str | None = None
) -> dict[str, Any]:
    """Ask the LLM why step ``ref`` (or run ``ref``'s failed step) failed; what was sent (PII
    scrubbed) and the model's answer, labelled as the model's."""
    step, logs = _failed_step(db, ref)
    if not step.error_message:
        raise ValidationFailed(f"step {step.id} ({step.step_key}) has no error to explain")
    regions = tuple(settings.pii_phone_regions.split(","))
    definition = {
        k: v for k, v in step.definition.items() if k in ("id", "kind", "with", "retry", "timeout")
    }
    # Scrub whole values first, then cut: a secret cut in half no longer looks like one.
    clean = pii.scrub_value(
        {"error": step.error_message, "definition": definition, "logs": logs},
        phone_regions=regions,
    )
    context = (
        f"Step kind: {step.kind}\nError category: {step.error_category}\n"
        f"Error: {str(clean['error'])[:4000]}\n"
        f"Step definition: {json.dumps(clean['definition'])[:2000]}\n"
        "Last log lines:\n" + "\n".join(str(line)[:500] for line in clean["logs"])
    )
    sent = context
    chat = get_provider(provider, settings)
    model = chat.default_model()
    answer = chat.chat(ChatRequest(
        messages=[
            {"role": "system", "content": "You diagnose failed steps of workflow runs. Say the"
             " most likely cause in one or two sentences, then one fix."},
            {"role": "user", "content": sent},
        ],
        model=model, max_tokens=160, temperature=0.2, seed=1,
    ))  # fmt: skip
    return {
        "step_id": step.id, "run_id": step.run_id, "step": step.step_key,
        "category": step.error_category, "sent": sent, "provider": chat.name, "model": model,
        "diagnosis": answer.text.strip(),
    }  # fmt: skip
