"""Frozen views of rows, handed out by the engine (never live ORM objects)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from awe.storage.privacy import readable

#: What views show scrubbed in privacy mode (the columns that hold the real values, sealed).
_SEALED_FIELDS = frozenset({"inputs", "outputs", "spec", "input", "output"})


def _pick(cls: type, row: Mapping[Any, Any]) -> dict[str, Any]:
    return {f.name: row[f.name] for f in fields(cls) if f.name in row}


def _view(data: dict[str, Any]) -> dict[str, Any]:
    """A record's fields as shown: payloads scrubbed in privacy mode, JSON-ready."""
    return dict(_jsonable({k: readable(v) if k in _SEALED_FIELDS else v for k, v in data.items()}))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class StepRecord:
    """One step of a run."""

    id: str
    run_id: str
    step_key: str
    kind: str
    status: str
    needs: list[str]
    queue: str
    priority: int
    #: The latest attempt's number (never reused).
    attempt: int
    #: Attempts counted against max_attempts since the step was last requeued.
    tries: int
    max_attempts: int
    input: Any
    output: Any
    error_category: str | None
    error_message: str | None
    errors: list[dict[str, Any]]
    lease_owner: str | None
    run_after: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StepRecord:
        """Build from a ``steps`` row mapping."""
        return cls(**_pick(cls, row))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (payloads scrubbed in privacy mode)."""
        return _view(asdict(self))


@dataclass(frozen=True)
class RunRecord:
    """A run, with its steps when read one at a time."""

    id: str
    workflow_name: str
    workflow_version: int | None
    status: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    spec: dict[str, Any]
    queue: str
    priority: int
    idempotency_key: str | None
    project_id: str | None
    parent_run_id: str | None
    parent_step_id: str | None
    forked_from_step: str | None
    trace_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: May use privileged kinds (pushed or started by an admin or the operator).
    trusted: bool = True
    #: How many workflow steps it is nested in.
    depth: int = 0
    steps: tuple[StepRecord, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any], steps: list[StepRecord] | None) -> RunRecord:
        """Build from a ``runs`` row mapping and its step records."""
        return cls(**_pick(cls, row), steps=tuple(steps or ()))

    def step(self, key: str) -> StepRecord:
        """The step called ``key``."""
        return next(s for s in self.steps if s.step_key == key)

    def as_dict(self, *, with_spec: bool = False, steps: bool = True) -> dict[str, Any]:
        """JSON-ready dict (``steps=False``: without the steps)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "steps"}
        if not with_spec:
            data.pop("spec")
        shown = _view(data)
        if steps:
            shown["steps"] = [s.as_dict() for s in self.steps]
        return shown


@dataclass(frozen=True)
class EventRecord:
    """One event of a run."""

    id: int
    run_id: str
    #: The event's number in its run: 1, 2, 3… in commit order (what readers follow).
    seq: int
    step_key: str | None
    type: str
    level: str
    message: str
    data: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> EventRecord:
        """Build from a ``run_events`` row mapping."""
        return cls(**_pick(cls, row))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(_jsonable(asdict(self)))


@dataclass(frozen=True)
class WorkerRecord:
    """A registered worker; ``status`` is 'lost' when a running one stopped heartbeating."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    status: str
    started_at: datetime
    heartbeat_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> WorkerRecord:
        """Build from a ``workers`` row mapping."""
        return cls(**_pick(cls, row))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(_jsonable(asdict(self)))
