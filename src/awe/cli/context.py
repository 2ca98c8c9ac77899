"""What every command shares: lazily loaded settings and database, and the two output modes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:  # loaded when a command first needs them: `awe --version` needs neither
    from awe.core.config import Settings
    from awe.storage.database import Database

# Markup off: what users and the validator write ("[a-z0-9]", "[steps]") is printed as it is.
# Styling is given explicitly (rich.text.Text, style=…), never as markup in strings.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


@dataclass
class CliState:
    """Per-invocation state, kept on the Typer context object."""

    debug: bool = False
    #: What an operational command reports, kept with its row in script_executions.
    report: dict[str, Any] | None = None
    #: False once the command removed the database (nowhere to record it, and recording would
    #: make an empty SQLite file again).
    record: bool = True
    _settings: Settings | None = None
    _db: Database | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The settings, read (and logging configured) on first use."""
        if self._settings is None:
            from awe.ai import pii
            from awe.core.config import load_settings
            from awe.core.logging import configure_for

            self._settings = load_settings()
            configure_for(self._settings, level="DEBUG" if self.debug else None)
            pii.configure(self._settings)  # AWE_PII_SCRUBBING: scrub what gets stored
        return self._settings

    @property
    def db(self) -> Database:
        """The database handle, built on first use."""
        if self._db is None:
            from awe.storage.database import create_database

            self._db = create_database(self.settings)
        return self._db

    def close(self) -> None:
        """Release the database's pooled connections."""
        if self._db is not None:
            self._db.dispose()


def state(ctx: typer.Context) -> CliState:
    """The CliState of this invocation (created by the root callback)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def print_json(payload: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
