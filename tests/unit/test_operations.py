"""Pure parts of operations: the masking of a recorded command line, and the one report
shape's status, summary and exit codes."""

from __future__ import annotations

from pydantic import SecretStr

from awe.ops.report import Report, failed, passed, run_check, skipped, warned
from awe.services.operations import masked_arguments
from tests.conftest import make_settings


def test_secret_options_and_configured_secrets_are_masked(tmp_path: object) -> None:
    """Values of secret-looking options (spaced or with '='), and any configured secret
    wherever it appears, become ***; everything else is kept as typed."""
    settings = make_settings(
        tmp_path, admin_token=SecretStr("z" * 8 + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6")
    )  # type: ignore[arg-type]
    secret = settings.admin_token.get_secret_value()  # type: ignore[union-attr]
    shown = masked_arguments(
        ["backup", "create", "--password", "hunter2", "--api-key=sk-1", "--dest", "/b",
         f"note={secret}", "--private-key", "k.pem", "--days", "30"],
        settings,
    )  # fmt: skip
    assert shown == [
        "backup", "create", "--password", "***", "--api-key=***", "--dest", "/b",
        "note=***", "--private-key", "***", "--days", "30",
    ]  # fmt: skip


def test_a_report_is_as_bad_as_its_worst_check() -> None:
    """fail beats warn beats pass; skips alone make a skip report (never a pass); exit 1 on
    a failure, and on a warning only when strict; a probe that raises is its own failure."""
    ok = run_check("a", "g", lambda: passed("fine"))
    meh = run_check("b", "g", lambda: warned("soon", "do x"))
    bad = run_check("c", "g", lambda: failed("broken", "do y"))
    gone = run_check("d", "g", lambda: skipped("no db"))
    boom = run_check("e", "g", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    assert Report.of([ok, gone]).status == "pass"
    assert Report.of([gone]).status == "skip"
    assert Report.of([ok, meh]).exit_code() == 0
    assert Report.of([ok, meh]).exit_code(strict=True) == 1
    assert Report.of([meh, bad]).status == "fail"
    assert Report.of([meh, bad]).summary == {"pass": 0, "warn": 1, "fail": 1, "skip": 0}
    assert boom.status == "fail"
    assert "ZeroDivisionError" in boom.message


def test_database_passwords_are_masked_in_a_record(tmp_path: object) -> None:
    """The passwords of the database URL and of the LISTEN URL, wherever they appear in a
    command line, become ***; the URLs' other parts stay."""
    settings = make_settings(
        tmp_path,  # type: ignore[arg-type]
        database_url="postgresql://awe:pooled-Secret-1@pgbouncer:6432/awe",
        database_listen_url="postgresql://awe:direct-Secret-2@db:5432/awe",
    )
    shown = masked_arguments(
        ["doctor", "--note", "pooled-Secret-1", "postgresql://awe:direct-Secret-2@db:5432/awe"],
        settings,
    )
    assert shown == ["doctor", "--note", "***", "postgresql://awe:***@db:5432/awe"]


def test_a_section_whose_step_did_not_run_fails_the_checklist() -> None:
    """A skipped, cancelled or dead section is a failure (never a pass, even when every
    section was skipped); a command that failed without a report says its last stderr line;
    a report whose own status is skip is a skip."""
    from awe.ops.checklist import report

    skipped = report("t", [{"id": "a", "status": "skipped", "output": None},
                           {"id": "b", "status": "cancelled", "output": None}])  # fmt: skip
    assert skipped["status"] == "fail"
    assert [s["status"] for s in skipped["sections"]] == ["fail", "fail"]
    crashed = report("t", [{"id": "a", "status": "succeeded", "output": {
        "command": "awe doctor", "exit_code": 1, "report": None,
        "stderr": "x\nerror: unexpected KeyError\n"}}])  # fmt: skip
    assert crashed["sections"][0]["problems"] == ["awe doctor exited 1: error: unexpected KeyError"]
    nothing = report("t", [{"id": "a", "status": "succeeded", "output": {
        "exit_code": 0, "report": {"status": "skip", "checks": []}}}])  # fmt: skip
    assert nothing["status"] == "pass"
    assert nothing["sections"][0]["status"] == "skip"
