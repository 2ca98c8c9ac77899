"""``awe worker``, ``awe scheduler`` and ``awe workers list``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from awe.cli.context import console, print_json, state
from awe.core import metrics, tracing
from awe.core.crypto import instance_key
from awe.core.errors import ConfigurationError
from awe.engine.client import Engine
from awe.engine.scheduler import Scheduler
from awe.engine.worker import Worker, WorkerOptions
from awe.services import knowledge, signing
from awe.storage.database import Database

workers_app = typer.Typer(help="Workers.", no_args_is_help=True)
MetricsPort = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve this process's Prometheus metrics at /metrics on this port.",
    ),
]
MetricsHost = Annotated[
    str, typer.Option("--metrics-host", help="Address for --metrics-port (0.0.0.0: every one).")
]


def _serve_metrics(port: int | None, host: str, db: Database) -> Callable[[], None]:
    """Start the metrics endpoint when a port is given; what stops it."""
    if port is None:
        return lambda: None
    metrics.describe("sqlite" if db.is_sqlite else "postgresql")
    try:
        return metrics.serve(port, host)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            " (choose a free --metrics-port)"
        ) from None


def _on_signals(stop: threading.Event, also: Worker | None = None) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        if also is not None:
            also.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _bounds(given: str | None) -> tuple[int, int] | None:
    """``--autoscale MIN,MAX`` as (MIN, MAX); a clear error for anything else."""
    if given is None:
        return None
    parts = given.split(",")
    try:
        low, high = (int(part) for part in parts) if len(parts) == 2 else (0, -1)
    except ValueError:
        low, high = 0, -1
    if not 1 <= low <= high:
        raise typer.BadParameter(
            f"{given!r}: give the fewest and most slots as MIN,MAX, 1 <= MIN <= MAX (e.g. 2,16)",
            param_hint="--autoscale",
        )
    return low, high


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``scheduler`` to the root app, and the ``workers`` group."""

    @app.command("worker")
    def worker(
        ctx: typer.Context,
        queues: Annotated[
            str, typer.Option("--queues", "-q", help="Comma-separated queues.")
        ] = "default",
        concurrency: Annotated[
            int | None, typer.Option("--concurrency", "-c", min=1, help="Steps at once (4).")
        ] = None,
        lease_seconds: Annotated[
            float,
            typer.Option(
                "--lease-seconds",
                min=0.5,
                help="Lease length; a dead worker's steps return after it.",
            ),
        ] = 6.0,
        autoscale: Annotated[
            str | None,
            typer.Option(
                "--autoscale",
                metavar="MIN,MAX",
                help="Grow from MIN to MAX slots while work waits, shrink back when idle"
                " (instead of --concurrency).",
            ),
        ] = None,
        burst: Annotated[bool, typer.Option("--burst", help="Exit when nothing is ready.")] = False,
        scheduler: Annotated[
            bool,
            typer.Option(
                "--scheduler/--no-scheduler", help="Also take part in scheduler leader election."
            ),
        ] = True,
        shutdown_grace: Annotated[
            float,
            typer.Option(
                "--shutdown-grace", help="Seconds to let running steps finish on SIGTERM."
            ),
        ] = 30.0,
        metrics_port: MetricsPort = None,
        metrics_host: MetricsHost = "127.0.0.1",
    ) -> None:
        """Run steps from the database until SIGTERM (then finish or release them and exit 0)."""
        bounds = _bounds(autoscale)
        if bounds is not None and concurrency is not None:
            raise typer.BadParameter(
                "give either --concurrency (fixed slots) or --autoscale MIN,MAX, not both",
                param_hint="--autoscale",
            )
        cli = state(ctx)
        tracing.configure("worker")
        stop_metrics = _serve_metrics(metrics_port, metrics_host, cli.db)
        signing.check_instance_key(cli.db, instance_key(cli.settings))
        options = WorkerOptions(
            queues=[q.strip() for q in queues.split(",") if q.strip()],
            concurrency=concurrency or 4,
            autoscale=bounds,
            lease_seconds=lease_seconds,
            shutdown_grace=shutdown_grace,
            dry_run=cli.settings.dry_run,
        )
        runner = Worker(cli.db, options, settings=cli.settings)
        stop = threading.Event()
        _on_signals(stop, runner)
        sched_thread = None
        if scheduler and not burst:
            sched = Scheduler(
                cli.db,
                lease_seconds=max(2.0, lease_seconds / 2),
                maintenance=[knowledge.owed_deletes(cli.db, cli.settings)],
            )
            sched_thread = threading.Thread(target=sched.run, args=(stop,), daemon=True)
            sched_thread.start()
        try:
            runner.run(burst=burst)
        finally:
            stop.set()
            if sched_thread is not None:
                sched_thread.join(timeout=5)
            stop_metrics()
            tracing.shutdown()

    @app.command("scheduler")
    def scheduler_cmd(
        ctx: typer.Context,
        interval: Annotated[
            float, typer.Option("--interval", min=0.05, help="Seconds between ticks.")
        ] = 1.0,
        lease_seconds: Annotated[
            float, typer.Option("--lease-seconds", min=0.5, help="Leader lease length.")
        ] = 15.0,
        metrics_port: MetricsPort = None,
        metrics_host: MetricsHost = "127.0.0.1",
    ) -> None:
        """Fire cron schedules (one leader at a time across every scheduler process)."""
        cli = state(ctx)
        tracing.configure("scheduler")
        stop_metrics = _serve_metrics(metrics_port, metrics_host, cli.db)
        stop = threading.Event()
        _on_signals(stop)
        try:
            Scheduler(
                cli.db,
                lease_seconds=lease_seconds,
                maintenance=[knowledge.owed_deletes(cli.db, cli.settings)],
            ).run(stop, interval=interval)
        finally:
            stop_metrics()
            tracing.shutdown()

    app.add_typer(workers_app, name="workers")


@workers_app.command("list")
def list_workers(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Include stopped workers.")] = False,
) -> None:
    """Live workers: host, pid, queues, concurrency, last heartbeat."""
    records = Engine(state(ctx).db).list_workers(include_stopped=all_)
    if as_json:
        print_json([r.as_dict() for r in records])
        return
    table = Table("id", "host", "pid", "queues", "concurrency", "status", "heartbeat")
    for r in records:
        table.add_row(
            r.id,
            r.host,
            str(r.pid),
            ",".join(r.queues),
            str(r.concurrency),
            r.status,
            r.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)
