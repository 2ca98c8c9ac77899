"""Structured logging: JSON for machines, ``[time] [LEVEL] [component] message`` for people.

Context variables (``trace_id``, ``run_id``, ``step_id``, ``worker_id``) bound with
:func:`bind_context` ride along on every line logged in that context, including lines from the
standard library's loggers (uvicorn, alembic), which are routed through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

if TYPE_CHECKING:
    from awe.core.config import Settings

CONTEXT_KEYS = ("trace_id", "run_id", "step_id", "worker_id")


def _console_line(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """Render ``[2025-06-17 10:30:00] [INFO] [component] message key=value ...``."""
    timestamp = event_dict.pop("timestamp", "")
    level = str(event_dict.pop("level", "info")).upper()
    logger_name = event_dict.pop("logger", None)
    component = event_dict.pop("component", None) or logger_name or "awe"
    message = event_dict.pop("event", "")
    exception = event_dict.pop("exception", None)
    extras = " ".join(f"{key}={value}" for key, value in event_dict.items())
    line = f"[{timestamp}] [{level}] [{component}] {message}"
    if extras:
        line = f"{line} {extras}"
    if exception:
        line = f"{line}\n{exception}"
    return line


class _OnlyMigrationSteps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or record.getMessage().startswith("Running ")


class _NoTokensInUrls(logging.Filter):
    """Access lines show paths with their query: a token in one (the setup link's) is hidden."""

    _TOKEN = re.compile(r"(token=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _drop_internal(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    event_dict.pop("color_message", None)  # uvicorn duplicates its message with ANSI colours
    return event_dict


@dataclass(frozen=True)
class LogFile:
    """Where logs also go, and how the file rotates (``max_bytes`` 0: never, by awe)."""

    path: Path
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 5


def _file_handler(target: LogFile) -> logging.Handler:
    """A size-rotating handler that several processes may share (``awe serve --workers``, a
    worker and the CLI): rotation takes a lock beside the file, archives are gzipped."""
    from concurrent_log_handler import ConcurrentRotatingFileHandler

    target.path.parent.mkdir(parents=True, exist_ok=True)
    return ConcurrentRotatingFileHandler(
        str(target.path),
        maxBytes=target.max_bytes,
        backupCount=target.backups,
        encoding="utf-8",
        use_gzip=True,
        chmod=0o640,
    )


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "console",
    stream: TextIO | None = None,
    file: LogFile | None = None,
) -> None:
    """Configure structlog and the standard library's root logger for this process: lines on
    ``stream`` (stderr), and in ``file`` as well when given."""
    json_output = fmt == "json"
    timestamper = structlog.processors.TimeStamper(
        fmt="iso" if json_output else "%Y-%m-%d %H:%M:%S", utc=json_output
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: Processor = structlog.processors.JSONRenderer() if json_output else _console_line
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_internal,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if file is not None:
        handlers.append(_file_handler(file))
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers:
        if old not in handlers:
            old.close()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    # Alembic narrates its setup at INFO; keep only the lines that say what migration ran.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration_logger = logging.getLogger("alembic.runtime.migration")
    migration_logger.filters[:] = [_OnlyMigrationSteps()]
    logging.getLogger("uvicorn.access").filters[:] = [_NoTokensInUrls()]

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def configure_for(settings: Settings, *, level: str | None = None) -> None:
    """Configure logging as ``settings`` say: level, format, and AWE_LOG_FILE with its rotation."""
    target = None
    if settings.log_file is not None:
        target = LogFile(settings.log_file, settings.log_file_max_bytes, settings.log_file_backups)
    configure_logging(
        level=level or settings.log_level, fmt=settings.effective_log_format, file=target
    )


def get_logger(component: str) -> structlog.stdlib.BoundLogger:
    """A logger whose lines name ``component`` (e.g. ``db``, ``worker``, ``api``)."""
    # Initial values keep the proxy lazy: loggers made at import follow configure_logging later.
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(
        component, component=component
    )
    return logger


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Attach ``trace_id``/``run_id``/``step_id``/``worker_id`` (or others) to every line inside."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def current_context() -> MutableMapping[str, Any]:
    """The context variables bound right now."""
    return structlog.contextvars.get_contextvars()
