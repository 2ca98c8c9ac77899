"""Groups of settings kept apart from awe.core.config's Settings, which inherits them, and the
helper every field uses to name its environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field


def _env(name: str, *older: str) -> AliasChoices:
    """Accept ``AWE_<NAME>`` first, then any older name that means the same thing."""
    return AliasChoices(f"AWE_{name}", *older)


class RetentionSettings(BaseModel):
    """How long history and backups are kept (awe.engine.retention, awe backup prune), how the
    clean-up runs, and where erasures are remembered for restores (awe.ops.erasure_ledger)."""

    retention_days: int = Field(
        default=180,
        ge=0,
        validation_alias=_env("RETENTION_DAYS"),
        description="Delete finished runs (steps, events) this many days after they end. 0: keep.",
    )
    retention_audit_days: int = Field(
        default=365,
        ge=0,
        validation_alias=_env("RETENTION_AUDIT_DAYS"),
        description="Delete audit log entries older than this many days. 0: keep forever.",
    )
    retention_security_days: int = Field(
        default=180,
        ge=0,
        validation_alias=_env("RETENTION_SECURITY_DAYS"),
        description="Delete security events older than this many days. 0: keep forever.",
    )
    retention_scripts_days: int = Field(
        default=180,
        ge=0,
        validation_alias=_env("RETENTION_SCRIPTS_DAYS"),
        description="Delete script execution records older than this many days. 0: keep.",
    )
    retention_interval: float = Field(
        default=3600.0,
        ge=0,
        validation_alias=_env("RETENTION_INTERVAL"),
        description="Seconds between the leading scheduler's retention passes. 0: never.",
    )
    retention_batch_size: int = Field(
        default=500,
        ge=1,
        le=100_000,
        validation_alias=_env("RETENTION_BATCH_SIZE"),
        description="Rows one retention transaction deletes at most (short transactions).",
    )
    backup_keep_days: int = Field(
        default=30,
        ge=0,
        validation_alias=_env("BACKUP_KEEP_DAYS"),
        description="awe backup prune keeps backups younger than this many days (and the"
        " newest few): what an erasure receipt counts on for when copies expire.",
    )
    erasure_ledger: Path | None = Field(
        default=None,
        validation_alias=_env("ERASURE_LEDGER"),
        description="The erasure ledger (subjects sealed with the instance key), which awe"
        " backup restore re-applies. Default: $AWE_HOME/erasures.jsonl; keep it with backups.",
    )
