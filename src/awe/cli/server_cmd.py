"""``awe up`` and ``awe serve``: run the engine."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.text import Text

from awe.api.app import create_app
from awe.cli.context import err_console, state
from awe.core.config import Settings
from awe.core.crypto import instance_key
from awe.core.errors import ConfigurationError
from awe.core.logging import get_logger
from awe.engine.scheduler import Scheduler
from awe.engine.worker import Worker, WorkerOptions
from awe.services import certificates, knowledge, setup, signing
from awe.storage import migrate
from awe.storage.database import Database

log = get_logger("server")

HostOption = Annotated[
    str | None, typer.Option("--host", help="Address to bind (default: AWE_HOST, 127.0.0.1).")
]
PortOption = Annotated[
    int | None, typer.Option("--port", help="Port to bind (default: AWE_PORT, 8000).")
]
CertOption = Annotated[
    Path | None, typer.Option("--tls-cert", help="Answer HTTPS with this certificate (PEM).")
]
KeyOption = Annotated[Path | None, typer.Option("--tls-key", help="The certificate's key (PEM).")]
ClientCaOption = Annotated[
    Path | None,
    typer.Option("--tls-client-ca", help="Check client certificates against this CA bundle."),
]
RequireOption = Annotated[
    bool,
    typer.Option("--tls-require-client-cert", help="Refuse clients without a certificate (mTLS)."),
]


@dataclass(frozen=True)
class Tls:
    """How the server answers HTTPS (from the options, else AWE_TLS_*)."""

    cert: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None
    require_client_cert: bool = False

    def resolved(self, settings: Settings) -> Tls:
        """The options, falling back to the settings; refused when incomplete or mismatched."""
        chosen = Tls(
            self.cert or settings.tls_cert,
            self.key or settings.tls_key,
            self.client_ca or settings.tls_client_ca,
            self.require_client_cert or settings.tls_require_client_cert,
        )
        if chosen.cert is None:
            if chosen.key or chosen.client_ca or chosen.require_client_cert:
                raise ConfigurationError(
                    "TLS options need a certificate: --tls-cert (AWE_TLS_CERT)"
                )
            return chosen
        if chosen.key is None:
            raise ConfigurationError("--tls-cert needs its key: --tls-key (AWE_TLS_KEY)")
        for path in (chosen.cert, chosen.key, chosen.client_ca):
            if path is not None and not path.is_file():
                raise ConfigurationError(f"{path} does not exist (awe certs list shows what does)")
        if chosen.require_client_cert and chosen.client_ca is None:
            raise ConfigurationError(
                "--tls-require-client-cert needs the CA to check clients against: --tls-client-ca"
            )
        if not certificates.key_matches(chosen.cert, chosen.key):
            raise ConfigurationError(f"{chosen.key} is not the key of {chosen.cert}")
        return chosen

    def uvicorn_options(self) -> dict[str, Any]:
        """What uvicorn.run takes for this."""
        if self.cert is None:
            return {}
        options: dict[str, Any] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            options["ssl_ca_certs"] = str(self.client_ca)
            options["ssl_cert_reqs"] = (
                ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
            )
        return options

    @property
    def scheme(self) -> str:
        """http or https."""
        return "https" if self.cert else "http"


def _serve(
    ctx: typer.Context,
    host: str | None,
    port: int | None,
    *,
    migrate_first: bool,
    with_engine: bool,
    workers: int = 1,
    tls: Tls | None = None,
) -> None:
    cli = state(ctx)
    settings = cli.settings
    secure = (tls or Tls()).resolved(settings)
    if migrate_first:
        migrate.upgrade(cli.db)
    else:
        cli.db.ping()
    signing.check_instance_key(cli.db, instance_key(settings))
    bind_host = host or settings.host
    bind_port = port or settings.port
    log.info(
        f"awe is up: {secure.scheme}://{bind_host}:{bind_port} (API docs at /docs)",
        database=cli.db.describe(),
    )
    if with_engine:
        _offer_setup_link(cli.db, bind_host, bind_port, secure.scheme)
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
            **secure.uvicorn_options(),
        )
        return
    background = _engine_threads(cli.db, settings) if with_engine else None
    app = create_app(settings, db=cli.db, background=background)
    # log_config=None keeps uvicorn on our logging setup, so its lines share our format.
    uvicorn.run(
        app,
        host=bind_host,
        port=bind_port,
        log_config=None,
        server_header=False,
        **secure.uvicorn_options(),
    )


def _offer_setup_link(db: Database, host: str, port: int, scheme: str) -> None:
    """On an installation with no users yet, print the one-time link that creates the first
    admin (a new one at each start; the previous one stops working)."""
    made = setup.new_token(db)
    if made is None:
        return
    token, expires = made
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only compared
    link = f"{scheme}://{shown}:{port}{setup.SETUP_PATH}?token={token}"
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
            threading.Thread(
                target=Scheduler(db, maintenance=[knowledge.owed_deletes(db, settings)]).run,
                args=(stop,),
                name="awe-scheduler",
            ),
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
    def up(
        ctx: typer.Context,
        host: HostOption = None,
        port: PortOption = None,
        tls_cert: CertOption = None,
        tls_key: KeyOption = None,
        tls_client_ca: ClientCaOption = None,
        tls_require_client_cert: RequireOption = False,
    ) -> None:
        """Migrate the database, then run the API, a worker and the scheduler in this process."""
        tls = Tls(tls_cert, tls_key, tls_client_ca, tls_require_client_cert)
        _serve(ctx, host, port, migrate_first=True, with_engine=True, tls=tls)

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: HostOption = None,
        port: PortOption = None,
        workers: Annotated[
            int, typer.Option("--workers", min=1, max=64, help="API processes on this port.")
        ] = 1,
        tls_cert: CertOption = None,
        tls_key: KeyOption = None,
        tls_client_ca: ClientCaOption = None,
        tls_require_client_cert: RequireOption = False,
    ) -> None:
        """Run the API server only (scale out: several processes, or hosts behind a proxy).

        With --tls-cert/--tls-key it answers HTTPS; with --tls-client-ca it checks client
        certificates, and with --tls-require-client-cert it refuses clients without one (mTLS).
        """
        tls = Tls(tls_cert, tls_key, tls_client_ca, tls_require_client_cert)
        _serve(ctx, host, port, migrate_first=False, with_engine=False, workers=workers, tls=tls)
