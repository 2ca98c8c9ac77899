"""The ``awe`` step kind's guard rails: only the listed operations commands pass validation
(located errors for a restore, a reset, --help, bad exit codes), templated commands are checked
when they run, members may not use the kind, and the settings it passes on read back the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.core.config import load_settings
from awe.core.errors import PermissionDenied, ValidationFailed
from awe.core.settings_export import settings_environment
from awe.engine import permissions
from awe.engine.files import WorkflowFileInvalid, load_text
from awe.engine.registry import default_registry
from awe.engine.steps.awe_command import command_words
from tests.conftest import make_settings

FILE = """\
name: ops
inputs: {{x: {{type: string, default: latest}}}}
steps:
  - id: a
    kind: awe
    with: {{command: {command}{extra}}}
"""


def problems(command: str, extra: str = "") -> list[str]:
    """The located problems of a one-step file running ``command``."""
    try:
        load_text(
            FILE.format(command=command, extra=extra),
            source="ops.yaml",
            known_kind=default_registry.knows,
        )
    except WorkflowFileInvalid as exc:
        return [f"ops.yaml:{p.line}:{p.col}: {p.message}" for p in exc.problems]
    return []


@pytest.mark.parametrize(
    "command",
    ['"backup restore latest --yes"', '"reset --full --yes"', "[db, downgrade, base]",
     '"secrets rotate"', '"run other.yaml"', '"doctor --help"', '""'],
)  # fmt: skip
def test_commands_outside_the_list_are_refused_where_they_are_written(command: str) -> None:
    """A restore, reset, downgrade, secret, nested run, --help or nothing at all is a located
    validation error that names what may run."""
    found = problems(command)
    assert len(found) == 1, found
    assert found[0].startswith("ops.yaml:6:")
    assert "step 'a': with.command:" in found[0]
    assert "may not be given --help" in found[0] or "allowed: backup create" in found[0]


def test_listed_commands_templates_and_exit_codes() -> None:
    """Listed commands (string or list) and templated ones pass; accept_exit_codes must be a
    list of integers; a template that renders to a refused command is refused when it runs."""
    assert problems('"doctor --only database"') == []
    assert problems("[backup, verify, latest, --restore-test]") == []
    assert problems("[backup, verify, '{{ inputs.x }}']") == []
    templated = problems('"backup verify {{ inputs.x }}"')
    assert len(templated) == 1
    assert "a template needs the list form" in templated[0]
    bad = problems('"doctor"', ", accept_exit_codes: [yes]")
    assert len(bad) == 1
    assert "accept_exit_codes must be a list of exit codes" in bad[0]
    assert command_words("db  vacuum --analyze") == (["db", "vacuum"], ["--analyze"])
    assert command_words(["errors", "top", "--since=7d", "--by", "workflow"]) == (
        ["errors", "top"],
        ["--since=7d", "--by", "workflow"],
    )
    with pytest.raises(ValidationFailed, match="may not run as a step"):
        command_words("backup restore latest")
    with pytest.raises(ValidationFailed, match="cannot be split"):
        command_words('doctor "unclosed')


def test_members_may_not_use_the_awe_kind(tmp_path: Path) -> None:
    """The kind reads the worker's own settings, so it is privileged: a member's workflow that
    uses it is refused."""
    spec = {"name": "x", "steps": [{"id": "a", "kind": "awe", "with": {"command": "doctor"}}]}
    with pytest.raises((PermissionDenied, ValidationFailed), match="members may not use"):
        permissions.check_member_spec(
            spec, settings=make_settings(tmp_path), registry=default_registry
        )


def test_settings_passed_on_read_back_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the kind hands its child process makes the same settings: the home made absolute,
    secrets in clear, booleans and numbers as text; what is left out stays at its default."""
    monkeypatch.chdir(tmp_path)
    settings = make_settings(
        Path("rel-home"),
        secret_key="k" * 40,
        pii_scrubbing=True,
        worker_concurrency=3,
        dry_run=True,
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
    )
    env = settings_environment(settings, leave_out=frozenset({"dry_run"}))
    assert env["AWE_HOME"] == str(tmp_path / "rel-home")
    assert env["AWE_SECRET_KEY"] == "k" * 40
    assert "AWE_DRY_RUN" not in env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    again = load_settings(_env_file=None)
    assert again.home == tmp_path / "rel-home"
    assert again.model_dump(exclude={"home", "dry_run"}) == settings.model_dump(
        exclude={"home", "dry_run"}
    )
    assert again.dry_run is False


@pytest.mark.parametrize(
    ("command", "refused"),
    [
        ("backup create --dest /srv/share", "may not be given --dest"),
        ("backup create --encrypt-to mine.pem", "may not be given --encrypt-to"),
        ("backup verify latest --dest /srv/share", "may not be given --dest"),
        ("backup verify ../../etc/x.tar --restore-test", "is not allowed here"),
        ("backup verify a b", "is not allowed here"),
        ("db vacuum --full", "may not be given --full"),
        ("doctor -h", "may not be given -h"),
        ("doctor --debug", "may not be given --debug"),
        ("--debug doctor", "may not run as a step"),
        ("doctor --only", "--only needs a value"),
        ("doctor --only --fix", "--only needs a value"),
        ("db stats extra", "takes no argument"),
        ("backup verify 'latest\n'", "is not allowed here"),
    ],
)
def test_options_that_write_elsewhere_lock_or_print_more_are_refused(
    command: str, refused: str
) -> None:
    """Only each command's own safe options pass: a destination, a key, a path, VACUUM FULL,
    help, debug output, a value-less option or a stray word are refused, as a template that
    rendered to them would be when the step runs (the same check)."""
    with pytest.raises(ValidationFailed, match=refused):
        command_words(command)


def test_the_workers_secrets_are_masked_in_what_the_child_prints(tmp_path: Path) -> None:
    """Every secret the child is given (keys, tokens, the database password) is masked in the
    lines kept and logged; a log line is an event of its own level."""
    from awe.core.settings_export import secret_values
    from awe.engine.secret_refs import Masker
    from awe.engine.steps.awe_command import _shape

    settings = make_settings(
        tmp_path,
        secret_key="s" * 40,
        admin_token="t" * 40,
        database_url="postgresql://awe:db-Password-9@db:5432/awe",
    )
    secrets = secret_values(settings)
    assert {"s" * 40, "t" * 40, "db-Password-9"} <= set(secrets)
    shape = _shape(Masker(secrets))
    line, level = shape(
        f"[2026-12-02] [ERROR] [db] cannot connect db-Password-9 {'s' * 40}", "stderr"
    )
    assert "db-Password-9" not in line
    assert "s" * 40 not in line
    assert level == "error"
    assert shape("[2026-12-02] [INFO] [backup] wrote x", "stderr")[1] == "info"
    assert shape("[2026-12-02] [WARNING] [doctor] warn", "stderr")[1] == "warning"
