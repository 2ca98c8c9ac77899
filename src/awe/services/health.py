"""Health of this awe installation: is the database answering."""

from __future__ import annotations

from dataclasses import dataclass

from awe import __version__
from awe.core.errors import AweError
from awe.storage.database import Database


@dataclass(frozen=True)
class Health:
    """The outcome of a health check."""

    database: str
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every part answered."""
        return not self.reasons

    def as_dict(self) -> dict[str, object]:
        """The JSON body of ``/api/v1/health``."""
        body: dict[str, object] = {
            "status": "ok" if self.ok else "unavailable",
            "database": self.database,
            "version": __version__,
        }
        if self.reasons:
            body["reasons"] = list(self.reasons)
        return body


def check(db: Database) -> Health:
    """Ping the database; report why not if it does not answer."""
    try:
        db.ping()
    except AweError as exc:
        return Health(database="unavailable", reasons=(exc.message,))
    return Health(database="ok")
