"""``awe up`` and ``awe serve``: run the engine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated

import typer
import uvicorn
from rich.text import Text

from awe.api.app import create_app
from awe.cli.context import err_console, state
from awe.core.config import Settings
from awe.core.crypto import instance_key
from awe.core.logging import get_logger
from awe.engine.scheduler import Scheduler
from awe.engine.worker import Worker, WorkerOptions
from awe.services import setup, signing
from awe.storage import migrate
from awe.storage.database import Database

log = get_logger("server")

HostOption = Annotated[
    str | None, typer.Option("--host", help="Address to bind (default: AWE_HOST, 127.0.0.1).")
]
PortOption = Annotated[
    int | None, typer.Option("--port", help="Port to bind (default: AWE_PORT, 8000).")
]


def _serve(
    ctx: typer.Context,
    host: str | None,
    port: int | None,
    *,
    migrate_first: bool,
    with_engine: bool,
    workers: int = 1,
) -> None:
    cli = state(ctx)
    settings = cli.settings
    if migrate_first:
        migrate.upgrade(cli.db)
    else:
        cli.db.ping()
    signing.check_instance_key(cli.db, instance_key(settings))
    bind_host = host or settings.host
    bind_port = port or settings.port
    log.info(
        f"awe is up: http://{bind_host}:{bind_port} (API docs at /docs)",
        database=cli.db.describe(),
    )
    if with_engine:
        _offer_setup_link(cli.db, bind_host, bind_port)
    if workers > 1:
        # Several processes: each builds its app from the environment (api/app.py).
        cli.close()
        uvicorn.run(
            "awe.api.app:app_from_environment",
            factory=True,
            workers=workers,
            host=bind_host,
            port=bind_port,
            log_config=None,
            server_header=False,
        )
        return
    background = _engine_threads(cli.db, settings) if with_engine else None
    app = create_app(settings, db=cli.db, background=background)
    # log_config=None keeps uvicorn on our logging setup, so its lines share our format.
    uvicorn.run(app, host=bind_host, port=bind_port, log_config=None, server_header=False)


def _offer_setup_link(db: Database, host: str, port: int) -> None:
    """On an installation with no users yet, print the one-time link that creates the first
    admin (a new one at each start; the previous one stops working)."""
    made = setup.new_token(db)
    if made is None:
        return
    token, expires = made
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only compared
    link = f"http://{shown}:{port}{setup.SETUP_PATH}?token={token}"
    err_console.print(
        Text.assemble(
            ("awe has no users yet.", "bold"),
            f" Create the first admin at\n  {link}\nThe link works once, until"
            f" {expires:%Y-%m-%d %H:%M} UTC (or: awe admin create EMAIL).",
        ),
        highlight=False,
        soft_wrap=True,
    )


def _engine_threads(db: Database, settings: Settings) -> Callable[[], AbstractContextManager[None]]:
    """The embedded shape: a worker and a scheduler candidate beside the API, one process.

    They live in the app's lifespan: uvicorn re-raises SIGTERM after its shutdown, so only the
    lifespan's exit is sure to run before the process ends.
    """

    @contextmanager
    def run() -> Iterator[None]:
        stop = threading.Event()
        options = WorkerOptions(concurrency=settings.worker_concurrency, dry_run=settings.dry_run)
        worker = Worker(db, options, settings=settings)
        threads = [
            threading.Thread(target=worker.run, name="awe-worker"),
            threading.Thread(target=Scheduler(db).run, args=(stop,), name="awe-scheduler"),
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            worker.stop()
            for thread in threads:
                thread.join(timeout=60)

    return run


def register(app: typer.Typer) -> None:
    """Add ``up`` and ``serve`` to the root app."""

    @app.command("up")
    def up(ctx: typer.Context, host: HostOption = None, port: PortOption = None) -> None:
        """Migrate the database, then run the API, a worker and the scheduler in this process."""
        _serve(ctx, host, port, migrate_first=True, with_engine=True)

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: HostOption = None,
        port: PortOption = None,
        workers: Annotated[
            int, typer.Option("--workers", min=1, max=64, help="API processes on this port.")
        ] = 1,
    ) -> None:
        """Run the API server only (scale out: several processes, or hosts behind a proxy)."""
        _serve(ctx, host, port, migrate_first=False, with_engine=False, workers=workers)
