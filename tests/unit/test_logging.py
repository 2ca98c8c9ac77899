"""Logging: the console line format, JSON output, and context variables on every line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from awe.core.logging import bind_context, configure_logging, get_logger

LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[(?P<level>[A-Z]+)\] \[(?P<comp>[^\]]+)\] "
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A stream the root logger writes to, restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def test_console_line_format(stream: io.StringIO) -> None:
    """Console lines read '[YYYY-MM-DD HH:MM:SS] [LEVEL] [component] message key=value'."""
    configure_logging(level="INFO", fmt="console", stream=stream)
    get_logger("db").info("migrated", revision="0001")
    line = stream.getvalue().strip()
    match = LINE.match(line)
    assert match, line
    assert match["level"] == "INFO"
    assert match["comp"] == "db"
    assert line.endswith("migrated revision=0001")


def test_level_filters(stream: io.StringIO) -> None:
    """Lines below the configured level are not written."""
    configure_logging(level="WARNING", fmt="console", stream=stream)
    log = get_logger("worker")
    log.info("quiet")
    log.warning("loud")
    assert "quiet" not in stream.getvalue()
    assert "loud" in stream.getvalue()


def test_context_rides_on_every_line_and_is_reset(stream: io.StringIO) -> None:
    """trace_id/run_id bound in a block appear on structlog and stdlib lines, and leave after."""
    configure_logging(level="INFO", fmt="json", stream=stream)
    with bind_context(trace_id="t-1", run_id="r-1", worker_id="w-1"):
        get_logger("engine").info("step started", step_id="s-1")
        logging.getLogger("third.party").info("library says %s", "hi")
    get_logger("engine").info("outside")
    first, second, third = (json.loads(x) for x in stream.getvalue().splitlines())
    assert first["trace_id"] == "t-1"
    assert first["run_id"] == "r-1"
    assert first["step_id"] == "s-1"
    assert first["component"] == "engine"
    assert second["event"] == "library says hi"
    assert second["worker_id"] == "w-1"
    assert "trace_id" not in third


def test_logger_made_before_configuration_follows_it(stream: io.StringIO) -> None:
    """A module-level logger created before configure_logging still uses the configured format."""
    early = get_logger("early")
    configure_logging(level="INFO", fmt="json", stream=stream)
    early.info("hello")
    assert json.loads(stream.getvalue())["component"] == "early"
