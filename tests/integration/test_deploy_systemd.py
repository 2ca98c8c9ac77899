"""The shipped systemd units, checked by systemd itself: ``systemd-analyze verify`` prints
nothing about them (it exits 0 even when it finds problems, so any output fails), and
``systemd-analyze security --offline=yes`` rates each one's exposure well under the threshold.
They are checked in a root of their own: systemd's units, the units, and an executable at the
path their ExecStart names."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNITS = ("awe-serve.service", "awe-scheduler.service", "awe-worker@9101.service")
#: systemd rates exposure from 0 (locked down) to 10; "OK" is below 2.
THRESHOLD = 2.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root holding systemd's own units, ours, and /opt/awe/bin/awe."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    system = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if p.is_dir())  # fmt: skip
    shutil.copytree(system, tmp_path / "usr/lib/systemd/system", symlinks=True)
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in FOLDER.glob("*.service"):
        shutil.copy(unit, units / unit.name)
    awe = tmp_path / "opt/awe/bin/awe"
    awe.parent.mkdir(parents=True)
    awe.write_text("#!/bin/sh\nexit 0\n")
    awe.chmod(0o755)
    return tmp_path


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze in ``root``."""
    return subprocess.run(
        ["systemd-analyze", *args, f"--root={root}"],
        cwd=root / "etc/systemd/system",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_systemd_verify_finds_nothing_to_say(root: Path) -> None:
    """verify on the three units (the worker template instantiated) prints nothing."""
    result = analyze(root, "verify", "--man=no", *UNITS)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_does_complain_about_a_broken_unit(root: Path) -> None:
    """The control: an unknown key, or an ExecStart that is not there, is reported."""
    unit = root / "etc/systemd/system/awe-scheduler.service"
    unit.write_text(unit.read_text().replace("[Service]", "[Service]\nBogusKey=1"))
    (root / "opt/awe/bin/awe").unlink()
    result = analyze(root, "verify", "--man=no", "awe-scheduler.service")
    said = result.stdout + result.stderr
    assert "BogusKey" in said
    assert "/opt/awe/bin/awe" in said


@pytest.mark.parametrize(
    "unit", ["awe-serve.service", "awe-scheduler.service", "awe-worker@.service"]
)
def test_every_unit_is_hardened(root: Path, unit: str) -> None:
    """The offline security review rates the unit's exposure under the threshold."""
    result = analyze(root, "security", "--offline=yes", f"--threshold={int(THRESHOLD * 10)}", unit)
    assert result.returncode == 0, result.stdout + result.stderr
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert level, result.stdout
    assert float(level[1]) < THRESHOLD
