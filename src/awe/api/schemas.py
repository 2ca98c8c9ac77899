"""Request and response bodies (``XCreate``, ``XUpdate``, ``XPublic``), for validation and docs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Ten years: the oldest anything in awe can be.
MAX_AGE_SECONDS = 10 * 365 * 86400


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An error (RFC 9457 problem+json)."""

    type: str
    title: str
    status: int
    detail: str


class UserCreate(_In):
    """Registration (or an admin creating a user)."""

    email: str = Field(max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str = Field(default="", max_length=200)


class AdminUserCreate(UserCreate):
    """An admin creating a user, with a role."""

    role: str = Field(default="member", pattern="^(admin|member)$")


class UserUpdate(_In):
    """An admin changing a user: role, or whether the account is active."""

    role: str | None = Field(default=None, pattern="^(admin|member)$")
    is_active: bool | None = None


class UserPublic(BaseModel):
    """A user."""

    id: str
    email: str
    display_name: str
    role: str
    is_active: bool
    created_at: str


class LoginIn(_In):
    """Email and password."""

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class RefreshIn(_In):
    """A refresh token."""

    refresh_token: str = Field(max_length=4096)


class PasswordChange(_In):
    """The current password and a new one."""

    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class TokenPairPublic(BaseModel):
    """Tokens of a login or refresh."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class ApiTokenCreate(_In):
    """A new personal API token."""

    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenPublic(BaseModel):
    """A personal API token (without the token)."""

    id: str
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None


class ApiTokenCreated(ApiTokenPublic):
    """A new token: ``token`` is shown this once."""

    token: str


class ProjectCreate(_In):
    """A new project."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=10_000)
    owner_id: str | None = Field(default=None, max_length=36)


class ProjectUpdate(_In):
    """Changes to a project."""

    description: str = Field(max_length=10_000)


class ProjectPublic(BaseModel):
    """A project."""

    id: str
    name: str
    description: str
    owner_id: str
    created_at: str
    updated_at: str


class WorkflowPush(_In):
    """A workflow as YAML text (``source``) or as a JSON spec (``spec``)."""

    source: str | None = Field(default=None, max_length=1024 * 1024)
    spec: dict[str, Any] | None = None


class WorkflowVersionPublic(BaseModel):
    """One stored version."""

    name: str
    version: int
    description: str
    steps: int
    created_at: str
    #: Pushed by an admin: its runs may use privileged kinds.
    trusted: bool = False
    created: bool | None = None


class WorkflowDetail(WorkflowVersionPublic):
    """A version with its source and spec."""

    source: str
    spec: dict[str, Any]


class ValidationProblem(BaseModel):
    """One located problem of a workflow."""

    line: int
    col: int
    message: str


class ValidationResult(BaseModel):
    """Whether a workflow is valid, and every problem."""

    valid: bool
    problems: list[ValidationProblem]


class RunCreate(_In):
    """Start a run of a stored workflow."""

    workflow: str = Field(max_length=100)
    version: int | None = Field(default=None, ge=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=200)
    dry_run: bool = False


class BatchRun(_In):
    """One run of a batch: its inputs, and its own idempotency key."""

    inputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=200)


class RunBatchCreate(_In):
    """Start many runs of one stored workflow at once (all or none)."""

    workflow: str = Field(max_length=100)
    version: int | None = Field(default=None, ge=1)
    runs: list[BatchRun] = Field(min_length=1, max_length=1000)
    dry_run: bool = False


class RunFork(_In):
    """Fork a run from a step."""

    from_step: str = Field(max_length=100)


class StepPublic(BaseModel):
    """One step of a run."""

    model_config = ConfigDict(extra="allow")

    id: str
    step_key: str
    kind: str
    status: str
    attempt: int
    max_attempts: int


class RunPublic(BaseModel):
    """A run (steps included when read one at a time)."""

    model_config = ConfigDict(extra="allow")

    id: str
    workflow_name: str
    workflow_version: int | None
    status: str
    project_id: str | None
    created_at: str
    steps: list[StepPublic]
    #: In lists: how many of the run's steps are in each state.
    step_counts: dict[str, int] | None = None


class EventPublic(BaseModel):
    """One run event; ``seq`` numbers a run's events in order (what ``after`` and SSE ids
    follow)."""

    id: int
    run_id: str
    seq: int
    step_key: str | None
    type: str
    level: str
    message: str
    data: dict[str, Any] | None
    created_at: str


class RunFilterIn(_In):
    """Which runs: every field given must match (``statuses``: any of them)."""

    statuses: list[str] = Field(default_factory=list, max_length=5)
    workflow: str | None = Field(default=None, max_length=100)
    project: str | None = Field(default=None, max_length=100)
    created_after: datetime | None = None
    created_before: datetime | None = None


class RunsBulkIn(_In):
    """Runs to act on: by ``run_ids``, or every run ``filter`` matches (at most 10,000)."""

    run_ids: list[str] | None = Field(default=None, max_length=10_000)
    filter: RunFilterIn | None = None


class BulkPublic(BaseModel):
    """What a bulk action did: the runs it changed, and why it skipped the others."""

    done: list[str]
    skipped: dict[str, str]


class RequeueIn(_In):
    """Dead steps to requeue, by id or by filter."""

    step_ids: list[str] | None = Field(default=None, max_length=10_000)
    queue: str | None = None
    category: str | None = None
    workflow: str | None = None
    older_than_seconds: float | None = Field(default=None, ge=0, le=MAX_AGE_SECONDS)


class Requeued(BaseModel):
    """Steps put back in the queue."""

    requeued: list[str]


class QueuePublic(BaseModel):
    """A queue right now."""

    name: str
    ready: int
    waiting_retry: int
    running: int
    oldest_ready_age_seconds: float | None
    concurrency_limit: int | None
    rate_per_second: float | None


class WorkerPublic(BaseModel):
    """A registered worker."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    status: str
    started_at: str
    heartbeat_at: str


class SchedulePublic(BaseModel):
    """A schedule."""

    id: str
    name: str
    workflow: str
    workflow_version: int | None
    cron: str
    timezone: str
    enabled: bool
    next_fire_at: str
    last_fire_at: str | None


class SecretSet(_In):
    """A secret's value (kept sealed; never shown again)."""

    value: str = Field(min_length=1, max_length=64 * 1024)


class SecretPublic(BaseModel):
    """A secret as listed: its name, never its value."""

    name: str
    updated_at: str
    updated_by: str | None


class SetupIn(_In):
    """The first admin, with the one-time setup token ``awe up`` printed."""

    token: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str = Field(default="", max_length=200)


class RunStarted(BaseModel):
    """The id of a run just started."""

    run_id: str


class RunsStarted(BaseModel):
    """The ids of the runs a batch started, in the order of its runs."""

    run_ids: list[str]


class DocumentPublic(BaseModel):
    """A knowledge-base document."""

    id: str
    name: str
    mime: str
    size: int
    status: str
    error: str | None
    chunk_count: int
    embedding_version: str | None
    created_at: str
    updated_at: str
    ingested_at: str | None


class UploadResult(BaseModel):
    """Documents stored, files refused, and the ingest run."""

    run_id: str | None
    documents: list[DocumentPublic]
    refused: list[dict[str, str]]


class SearchIn(_In):
    """A knowledge-base search."""

    query: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=4, ge=1, le=100)
    names: list[str] = Field(default_factory=list, max_length=100)
    allow_mixed: bool = Field(
        default=False,
        description="Search the current embedding version even while documents wait for a"
        " reindex (else 409).",
    )


class ChunkPublic(BaseModel):
    """A search result."""

    chunk_id: str
    document_id: str
    document: str
    source: str
    chunk_index: int
    score: float
    text: str


class SubjectIn(_In):
    """A data subject: exactly one of an e-mail (and its account), a user id, or a value."""

    email: str | None = Field(default=None, max_length=320)
    user: str | None = Field(default=None, max_length=36)
    value: str | None = Field(default=None, max_length=500)


class ErasureIn(SubjectIn):
    """An erasure request: how, and whether only to say what it would do."""

    mode: str = Field(default="delete", pattern="^(delete|pseudonymize)$")
    dry_run: bool = False
    #: The rows the dry run counted; required with ``value`` (see awe erase --expect).
    expect: int | None = Field(default=None, ge=0)
