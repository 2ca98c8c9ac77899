"""``awe setup`` and ``awe reset``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from awe.cli.context import err_console, print_json, state
from awe.cli.operation import (
    DryRunOption,
    JsonOption,
    YesOption,
    confirm,
    dry_run,
    finish_dry_run,
    line,
    operation,
    show_report,
)
from awe.services import installation, setup
from awe.services.tokens import operator_actor


def _show(steps: list[installation.Step]) -> None:
    for step in steps:
        mark = "changed" if step.changed else "ok"
        line("setup", "INFO", f"{mark:<7}  {step.id}: {step.message}")
        if step.shown_once:
            err_console.print(f"password (shown this once): {step.shown_once}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``setup`` and ``reset`` to the root app."""

    @app.command("setup")
    @operation("setup")
    def run_setup(
        ctx: typer.Context,
        admin: Annotated[
            str | None,
            typer.Option("--admin", help="Create this first admin (a password is generated)."),
        ] = None,
        with_certs: Annotated[
            bool, typer.Option("--with-certs", help="Also make a CA and a server certificate.")
        ] = False,
        san: Annotated[
            list[str] | None, typer.Option("--san", help="Names of the server certificate.")
        ] = None,
        yes: YesOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Folders and modes, the instance key, the database at head, (a CA), the first admin,
        then doctor: each step reported; running it again changes nothing."""
        cli = state(ctx)
        if admin is None and not yes and not as_json and sys.stdin.isatty():
            db = cli.db
            try:
                ask = not setup.has_users(db)
            except Exception:  # noqa: BLE001 - no tables yet: setup makes them, then asks
                ask = True
            if ask:
                admin = typer.prompt("first admin's email (empty: later)", default="") or None
        steps, report = installation.run_setup(
            cli.settings, lambda: cli.db, actor=operator_actor(), admin_email=admin,
            with_certs=with_certs, server_names=san,
        )  # fmt: skip
        cli.report = {"steps": [s.as_dict() for s in steps], "doctor": report.as_dict()}
        if as_json:
            print_json(cli.report)
            for step in steps:
                if step.shown_once:
                    err_console.print(f"password (shown this once): {step.shown_once}")
        else:
            _show(steps)
            show_report("setup", report, as_json=False)
        raise typer.Exit(report.exit_code())

    @app.command("reset")
    @operation("reset")
    def reset(
        ctx: typer.Context,
        full: Annotated[
            bool,
            typer.Option("--full", help="Back up, then remove the database and the secrets."),
        ] = False,
        no_backup: Annotated[
            bool, typer.Option("--no-backup", help="With --full: no backup first.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="With --full: even while workers are live.")
        ] = False,
        yes: YesOption = False,
        dry_run_flag: DryRunOption = False,
        as_json: JsonOption = False,
    ) -> None:
        """Soft (default): release expired leases, remove unfinished backup files, re-run
        setup; nothing of value is deleted. --full: back up, then remove the database and
        the home's secrets (backups are kept)."""
        cli = state(ctx)
        what = (
            f"remove {cli.db.describe()} and the secrets in {cli.settings.home}"
            if full
            else "release expired leases, remove unfinished backup files and re-run setup"
        )
        if dry_run(cli, dry_run_flag):
            finish_dry_run("reset", f"would {what}")
        if full:
            confirm(f"This will {what}{'' if no_backup else ' after a backup'}. Go on?", yes=yes)
            cli.record = False  # the database goes: recording would make an empty one again
            steps = installation.full_reset(
                cli.settings, cli.db, take_backup=not no_backup, force=force
            )
            cli.report = {"steps": [s.as_dict() for s in steps]}
            if as_json:
                print_json(cli.report)
            else:
                _show(steps)
            return
        steps = installation.soft_reset(cli.settings, cli.db)
        again, report = installation.run_setup(cli.settings, lambda: cli.db, actor=operator_actor())
        steps += again
        cli.report = {"steps": [s.as_dict() for s in steps], "doctor": report.as_dict()}
        if as_json:
            print_json(cli.report)
        else:
            _show(steps)
            show_report("reset", report, as_json=False)
        raise typer.Exit(report.exit_code())
