"""``awe setup`` and ``awe reset``: the setup sequence as one idempotent command, each step
reported (made or already there), and the soft and full resets of a home.

Setup: the home and secrets folders (700), the instance key, the database at head and matching
the models, the key's fingerprint recorded, the shipped runbooks, optionally a CA and a server
certificate, the first admin when one is asked for, then a final doctor. Running it again
changes nothing.
"""

from __future__ import annotations

import os
import secrets as random
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from awe.core import crypto
from awe.core.config import Settings
from awe.core.errors import ConfigurationError, Conflict
from awe.engine.client import Engine
from awe.engine.queue_stats import live_workers
from awe.ops import backup, certs
from awe.services import auth, backups, doctor, runbooks, setup, signing
from awe.services.audit import Actor
from awe.storage import instance_state, migrate
from awe.storage.database import Database

#: Unfinished backup files younger than this may belong to a backup running now.
STALE_SECONDS = 3600


@dataclass
class Step:
    """One step of a setup or reset: what it is, whether it changed something, and how."""

    id: str
    changed: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    #: Shown to the operator once (a generated password); never in the JSON form or a record.
    shown_once: str | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"id": self.id, "changed": self.changed, "message": self.message, "data": self.data}


def _private_folder(path: Path, id_: str) -> Step:
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        return Step(id_, True, f"made {path} (700)")
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
        return Step(id_, True, f"chmod 700 {path}")
    return Step(id_, False, f"{path} is there (700)")


def run_setup(
    settings: Settings,
    open_database: Callable[[], Database],
    *,
    actor: Actor,
    admin_email: str | None = None,
    with_certs: bool = False,
    server_names: list[str] | None = None,
) -> tuple[list[Step], doctor.Report]:
    """Every setup step in order, then doctor's report (AI checks left out: they are slow)."""
    done = [_private_folder(settings.home, "home")]
    key_file = crypto.key_path(settings)
    done.append(_private_folder(key_file.parent, "secrets_folder"))
    had_key = key_file.exists() or settings.secret_key is not None
    db = open_database()
    recorded = _recorded_fingerprint(db)
    if not had_key and recorded is not None:
        raise ConfigurationError(
            f"the database was set up with instance key {recorded}, and this machine has none:"
            f" copy {key_file} from the first machine, or set AWE_SECRET_KEY (a new key would"
            " not open what the database holds sealed)"
        )
    key = crypto.instance_key(settings)
    done.append(Step("instance_key", not had_key, f"{key.fingerprint} ({key.source})"))
    pending = migrate.pending(db)
    migrate.upgrade(db)
    done.append(
        Step("database", bool(pending), f"applied {len(pending)} migration(s)" if pending
             else f"at head ({', '.join(migrate.status(db).heads)})", {"applied": pending})
    )  # fmt: skip
    migrate.check(db)
    done.append(Step("schema", False, "the database matches the models"))
    signing.check_instance_key(db, key)
    done.append(Step("key_recorded", recorded is None, "the database knows the key"))
    if with_certs:
        folder = certs.folder_of(settings.home)
        if (folder / f"{certs.CA_NAME}.pem").exists():
            done.append(Step("ca", False, f"{folder / 'ca.pem'} is there"))
        else:
            certs.init_ca(folder)
            done.append(Step("ca", True, f"made the CA in {folder}"))
        if (folder / "server.pem").exists():
            done.append(Step("server_certificate", False, f"{folder / 'server.pem'} is there"))
        else:
            info = certs.issue(folder, "server", sans=server_names or [])
            done.append(
                Step("server_certificate", True, f"issued {info.path} for {', '.join(info.sans)}")
            )
    done.append(_runbooks(db, actor))
    done.append(_first_admin(db, actor, admin_email))
    report = doctor.check(settings, lambda: db, doctor.chosen([], ["ai"]))
    return done, report


def _runbooks(db: Database, actor: Actor) -> Step:
    installed = runbooks.install(db, actor=actor)
    changed = [f"{r.name} v{r.version}" for r in installed if r.created]
    names = ", ".join(r.name for r in installed)
    message = f"installed {', '.join(changed)}" if changed else f"{names} are up to date"
    return Step("runbooks", bool(changed), message, {"runbooks": [r.as_dict() for r in installed]})


def _recorded_fingerprint(db: Database) -> str | None:
    """The instance key the database was set up with (None: not yet, or no tables yet)."""
    try:
        with db.read() as conn:
            return instance_state.get(conn, instance_state.INSTANCE_KEY_FINGERPRINT)
    except SQLAlchemyError:
        return None


def _first_admin(db: Database, actor: Actor, email: str | None) -> Step:
    if setup.has_users(db):
        return Step("admin", False, "awe has users already")
    if not email:
        return Step(
            "admin", False,
            "no user yet: awe up prints a one-time setup link (or: awe setup --admin EMAIL)",
        )  # fmt: skip
    password = random.token_urlsafe(18)
    user = auth.create_user(db, email=email, password=password, role="admin", actor=actor)
    return Step("admin", True, f"created admin {user.email}", shown_once=password)


def _newest_change(path: Path) -> float:
    """The latest modification time of a file, or of anything in a folder (a backup writing
    into its scratch folder changes what is inside, not the folder)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                newest = max(newest, Path(root, name).lstat().st_mtime)
    return newest


def soft_reset(settings: Settings, db: Database) -> list[Step]:
    """Clear what is safe to clear: expired leases back to the queue, and unfinished backup
    files older than an hour removed. No data is deleted."""
    done = []
    engine = Engine(db)
    reaped = [s for s in engine.expired_leases() if engine.reap(s) is not None]
    done.append(Step("leases", bool(reaped), f"released {len(reaped)} expired lease(s)"))
    folder = settings.effective_backup_dir
    cutoff = time.time() - STALE_SECONDS  # younger ones may belong to a backup running now
    found = list(folder.glob(".awe-*")) if folder.is_dir() else []
    stray = [p for p in found if _newest_change(p) < cutoff]
    for path in stray:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    done.append(
        Step("partial_files", bool(stray), f"removed {len(stray)} unfinished backup file(s)")
    )
    return done


def full_reset(
    settings: Settings, db: Database, *, take_backup: bool, force: bool = False
) -> list[Step]:
    """Back up (unless told not to), then remove the database (the SQLite file, or every table
    on PostgreSQL) and exactly the secret files a backup holds (the instance key, the
    certificates). Refused while workers are live unless forced; backups are kept."""
    live = live_workers(db)
    if live and not force:
        raise Conflict(f"{live} worker(s) are live: stop them first, or pass --force")
    files = [path for _, path in backup.secret_files(settings)]
    done = []
    if take_backup:
        made = backups.create(db, settings)
        done.append(Step("backup", True, f"backed up into {made.path}", {"backup": str(made.path)}))
    described = db.describe()
    if db.is_sqlite:
        live_file = Path(str(db.engine.url.database))
        db.dispose()
        for suffix in ("", "-wal", "-shm"):
            live_file.with_name(live_file.name + suffix).unlink(missing_ok=True)
        done.append(Step("database", True, f"removed {live_file}"))
    else:
        migrate.downgrade(db, "base")
        with db.write() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        done.append(Step("database", True, f"removed every table of {described}"))
    for path in files:
        path.unlink(missing_ok=True)
    for folder in (crypto.key_path(settings).parent, certs.folder_of(settings.home)):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()  # emptied: what else was there (not awe's) stays
    shown = f"removed {len(files)} secret file(s)" if files else "no secret file to remove"
    done.append(Step("secrets", bool(files), shown, {"files": [str(p) for p in files]}))
    return done
