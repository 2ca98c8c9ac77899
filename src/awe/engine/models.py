"""The workflow format as pydantic models: the typed edge for files, the builder and the API.

The file checker (``files.py``) finds problems with their line and column first; a document it
accepts always validates here, and ``to_spec()`` gives back the plain mapping the engine stores.
The API uses these models for request bodies and their OpenAPI schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

InputType = Literal["string", "integer", "number", "boolean", "array", "object"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InputSpec(_Model):
    """A declared input of a workflow."""

    type: InputType = "string"
    required: bool = False
    default: Any = None
    description: str | None = None


class RetrySpec(_Model):
    """How a step is retried: attempts (the first counts), waits in seconds, jitter fraction."""

    max_attempts: int = Field(default=5, ge=1)
    backoff: list[float] = Field(default_factory=lambda: [1.0, 5.0, 25.0, 125.0])
    jitter: float = Field(default=0.2, ge=0, le=1)


class StepSpec(_Model):
    """One step of a workflow's DAG."""

    id: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    kind: str
    description: str | None = None
    needs: list[str] | str = Field(default_factory=list)
    with_: Any = Field(default=None, alias="with")
    when: Any = None
    for_each: Any = None
    parallel: int | None = Field(default=None, ge=1, le=64)
    retry: RetrySpec | None = None
    timeout: float | None = Field(default=None, gt=0)
    on_failure: Literal["fail", "continue"] = "fail"
    queue: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    priority: int | None = None
    name: str | None = None


class WorkflowSpec(_Model):
    """A workflow: typed inputs, a DAG of steps, outputs, and where and when it runs."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    priority: int = 0
    schedule: str | None = None
    timezone: str | None = None
    steps: list[StepSpec] = Field(min_length=1)

    def to_spec(self) -> dict[str, Any]:
        """The plain mapping the engine stores and runs (only what was given)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
