"""Gauges the API reads at scrape time, besides the queues: whether the database answers and how
big it is, the oldest dead letter, each workflow's last run and last success, documents by state,
the newest backup, and certificate expiry. Read from the database and the home's folders, so
every API process reports the same truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from awe.core.clock import utcnow
from awe.core.config import Settings
from awe.core.errors import AweError
from awe.core.logging import get_logger
from awe.ops import dbstats
from awe.services import backups, certificates, queues
from awe.storage.database import DB_ERRORS, Database

log = get_logger("api")


class Probe:
    """Whether the database answered this scrape's one ping. Every collector asks it, rather
    than each waiting out a connect timeout of its own when the database is down."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.up = False

    def check(self) -> bool:
        """Ping once; remember the answer until the next scrape."""
        try:
            self.db.ping()
            self.up = True
        except (SQLAlchemyError, *DB_ERRORS, AweError):  # a full pool's TimeoutError too
            self.up = False
        return self.up


def unreadable(collector: str, exc: Exception) -> None:
    """A query the database refused (a table behind a migration, a permission): log it; the
    scrape goes on without that collector's series rather than answering 500."""
    log.warning("metrics_unreadable", collector=collector, error=type(exc).__name__)


class StateCollector(Collector):
    """Database up and size, dead-letter age, workflows' last runs, documents, backups, certs."""

    def __init__(self, db: Database, settings: Settings, probe: Probe) -> None:
        self.db = db
        self.settings = settings
        self.probe = probe

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Every gauge that can be read now (a database that is down gives only ``up`` 0)."""
        up = GaugeMetricFamily("awe_database_up", "Whether the database answers (1) or not (0)")
        up.add_metric([], 1 if self.probe.up else 0)
        yield up
        if self.probe.up:
            yield from self._database()
        yield from self._files()

    def _database(self) -> Iterator[GaugeMetricFamily]:
        try:
            stats = queues.governance_stats(self.db)
        except (SQLAlchemyError, AweError) as exc:
            unreadable("state", exc)
            return
        now = utcnow()
        dead = GaugeMetricFamily(
            "awe_dead_letter_oldest_age_seconds",
            "How long the oldest step in the dead-letter queue has been there (0: none)",
        )
        oldest = stats["oldest_dead"]
        # Clocks of several machines write those rows: an age is never negative.
        dead.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield dead
        yield _per_workflow(
            "awe_workflow_last_run_timestamp_seconds",
            "When a run of the workflow last ended (Unix time)",
            stats["last_run"],
        )
        yield _per_workflow(
            "awe_workflow_last_success_timestamp_seconds",
            "When a run of the workflow last succeeded (Unix time)",
            stats["last_success"],
        )
        documents = GaugeMetricFamily(
            "awe_knowledge_documents", "Knowledge documents by state", labels=["state"]
        )
        for state, n in sorted(stats["documents"].items()):
            documents.add_metric([state], n)
        yield documents
        size = self._database_size()
        if size is not None:
            family = GaugeMetricFamily("awe_database_size_bytes", "The database's size on disk")
            family.add_metric([], size)
            yield family

    def _database_size(self) -> float | None:
        try:
            return float(dbstats.size_bytes(self.db))
        except (SQLAlchemyError, AweError) as exc:
            unreadable("database_size", exc)
            return None

    def _files(self) -> Iterator[GaugeMetricFamily]:
        """The newest backup and the certificates, from the home's folders."""
        try:
            found = backups.listed(self.settings)
        except (OSError, AweError, ValueError, KeyError):
            found = []
        # With no backup the families have no sample (AweBackupStale fires on the absence).
        age = GaugeMetricFamily(
            "awe_backup_last_timestamp_seconds", "When the newest backup was made (Unix time)"
        )
        size = GaugeMetricFamily("awe_backup_last_size_bytes", "The newest backup's size")
        if found:
            newest = found[0]
            age.add_metric([], newest.created_at.timestamp())
            size.add_metric([], newest.path.stat().st_size if newest.path.exists() else 0)
        yield from (age, size)
        try:
            certs = certificates.listed(self.settings)
        except (OSError, AweError, ValueError):
            certs = []
        expiry = GaugeMetricFamily(
            "awe_certificate_expiry_timestamp_seconds",
            "When a certificate of the home's certs folder expires (Unix time)",
            labels=["name"],
        )
        for cert in certs:
            expiry.add_metric([cert.name], cert.not_after.timestamp())
        yield expiry


def _per_workflow(name: str, documentation: str, moments: dict[str, datetime]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["workflow"])
    for workflow, at in sorted(moments.items()):
        family.add_metric([workflow], at.timestamp())
    return family
