"""The report of a shipped runbook: each section is one ``awe`` step, judged by its report or its
exit code; the runbook's ``report`` and ``verdict`` steps call these (kind ``python``).

A section whose step did not succeed (dead after its retries, skipped or cancelled) fails: a
check that could not run is never a pass. A section is ``skip`` only when its command's own
report says there was nothing to check (no certificate, say).
"""

from __future__ import annotations

from typing import Any

from awe.engine.errors import StepError

RANK = {"pass": 0, "skip": 0, "warn": 1, "fail": 2}
#: The category of a runbook whose report holds a failure (not retried: run it again).
CATEGORY = "runbook_failed"


def _section(section: dict[str, Any]) -> dict[str, Any]:
    sid = str(section.get("id", "?"))
    step_status = section.get("status")
    output = section.get("output")
    out = {"id": sid, "title": section.get("title") or sid}
    if step_status != "succeeded" or not isinstance(output, dict):
        return {**out, "status": "fail", "exit_code": None, "problems": [
            f"the step did not succeed ({step_status}): see its error in the run"]}  # fmt: skip
    code = output.get("exit_code")
    report = output.get("report")
    status = report.get("status") if isinstance(report, dict) else None
    if status not in RANK:
        status = "pass" if code in (0, 10) else "fail"
    problems: list[str] = []
    if isinstance(report, dict) and isinstance(report.get("checks"), list):
        problems = [
            f"{c.get('status')} {c.get('id')}: {c.get('message')}"
            + (f" (fix: {c['fix']})" if c.get("fix") else "")
            for c in report["checks"]
            if isinstance(c, dict) and c.get("status") in ("warn", "fail")
        ]
    elif isinstance(report, dict) and isinstance(report.get("rows"), list):
        # errors top: failures are a finding; steps that went dead are worth a look.
        rows = [r for r in report["rows"] if isinstance(r, dict)]
        if status == "pass" and any(r.get("dead") for r in rows):
            status = "warn"
        problems = [
            f"{r.get('key')}: {r.get('count')} failure(s), {r.get('dead')} dead"
            f" (last {str(r.get('last_at'))[:19]}: {r.get('example')})"
            for r in rows[:5]
        ]
    elif status == "fail":
        said = next((ln.strip() for ln in reversed(str(output.get("stderr") or "").splitlines())
                     if ln.strip()), "")  # fmt: skip
        problems = [f"{output.get('command', sid)} exited {code}" + (f": {said}" if said else "")]
    return {**out, "status": status, "exit_code": code, "problems": problems,
            "report": report}  # fmt: skip


def report(title: str, sections: list[dict[str, Any]]) -> dict[str, Any]:
    """One report of the sections: their statuses, the worst of them, and a text for people."""
    judged = [_section(s) for s in sections]
    status = max((s["status"] for s in judged), key=RANK.__getitem__, default="pass")
    status = "pass" if status == "skip" else status
    summary = {k: sum(1 for s in judged if s["status"] == k) for k in RANK}
    counts = ", ".join(f"{summary[k]} {k}" for k in ("pass", "warn", "fail", "skip"))
    lines = [f"{title}: {status} ({counts})"]
    for s in judged:
        if s["status"] in ("warn", "fail"):
            lines.append(f"- {s['title']}: {s['status']}")
            lines.extend(f"    {p}" for p in s["problems"][:10])
    return {
        "title": title,
        "status": status,
        "summary": summary,
        "sections": judged,
        "text": "\n".join(lines),
    }


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Fail the run (not retried) when the report holds a failure; otherwise its status."""
    if report.get("status") == "fail":
        failed = [s["title"] for s in report.get("sections", []) if s.get("status") == "fail"]
        raise StepError(
            f"{report.get('title')}: failed: {', '.join(failed)} (the report step has the details)",
            category=CATEGORY,
            retryable=False,
        )
    return {"status": report.get("status"), "summary": report.get("summary")}
