"""The shipped Prometheus files, checked by the tool that reads them: ``promtool check config``
on the scrape config, ``promtool check rules`` on the alert and recording rules, and
``promtool test rules`` on the alerts' unit tests; every alert carries its ``for``, severity,
summary, description and runbook, and a unit test makes it fire."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's promtool in the shipped folder."""
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: .ci/run installs Debian's prometheus package"
    return subprocess.run(
        [tool, *args], cwd=FOLDER, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "awe-alerts.yml", "awe-rules.yml"),
        ("test", "rules", "awe-alerts.test.yml"),
    ],
    ids=["config", "rules", "alert-tests"],
)
def test_promtool_accepts_the_shipped_files(args: tuple[str, ...]) -> None:
    """promtool exits 0 and reports no problem (its lint warnings included)."""
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in (result.stdout + result.stderr).upper()


def test_every_alert_is_complete_and_made_to_fire_by_a_test() -> None:
    """Each alert has ``for``, a severity, a summary, a description and a runbook URL, and the
    unit tests expect it to fire at least once and, in an explicit empty expectation, to stay
    quiet at least once."""
    rules = YAML(typ="safe").load(FOLDER / "awe-alerts.yml")
    alerts = [r for group in rules["groups"] for r in group["rules"] if "alert" in r]
    assert len(alerts) >= 13
    for alert in alerts:
        assert "for" in alert, alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert alert["annotations"].get(key), (alert["alert"], key)
    tests = YAML(typ="safe").load(FOLDER / "awe-alerts.test.yml")["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts}
    assert names - fired == set()
    assert names - quiet == set()
