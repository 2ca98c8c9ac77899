"""Log files: AWE_LOG_FILE keeps the lines on stderr and writes them to the file as well; awe's
own rotation is safe with several processes writing at once (no line lost, archives gzipped, at
most the configured number kept); and the shipped logrotate file, run by the real logrotate,
rotates a file a live process keeps writing to."""

from __future__ import annotations

import getpass
import grp
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AWE = str(Path(sys.executable).parent / "awe")

WRITER = """
import sys
from pathlib import Path
from awe.core.logging import LogFile, configure_logging, get_logger
configure_logging(file=LogFile(Path(sys.argv[1]), max_bytes=4096, backups=int(sys.argv[3])),
                  stream=sys.stdout)
log = get_logger("writer")
for n in range(int(sys.argv[4])):
    log.info("line", writer=sys.argv[2], n=n, pad="x" * 60)
"""


def all_lines(folder: Path) -> list[str]:
    """Every line in the log file and its archives."""
    lines: list[str] = []
    for path in folder.iterdir():
        if path.name.endswith(".gz"):
            lines += gzip.decompress(path.read_bytes()).decode().splitlines()
        elif path.name.startswith("awe.log"):
            lines += path.read_text().splitlines()
    return lines


def test_the_cli_logs_to_stderr_and_to_the_file(tmp_path: Path) -> None:
    """With AWE_LOG_FILE a command's log lines are on stderr as before and in the file too,
    made with its folder."""
    log_file = tmp_path / "logs" / "awe.log"
    env = {**os.environ, "AWE_HOME": str(tmp_path / "home"), "AWE_LOG_FILE": str(log_file)}
    done = subprocess.run(
        [AWE, "db", "upgrade"], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "database upgraded" in done.stderr
    written = log_file.read_text()
    assert "[INFO] [db] database upgraded" in written
    assert "Running upgrade" in written


def test_rotation_with_several_writers_loses_no_line(tmp_path: Path) -> None:
    """Three processes write 400 lines each into one file that rotates every 4 KB: every line
    is in the file or an archive only while archives last, archives are gzipped, and no more
    than the backup count are kept."""
    log_file = tmp_path / "awe.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    many = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log_file), f"w{i}", "500", "400"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for i in range(3)
    ]
    assert [p.wait(timeout=120) for p in many] == [0, 0, 0]
    archives = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".gz"))
    assert archives, "the file never rotated"
    lines = [ln for ln in all_lines(tmp_path) if "[writer] line" in ln]
    assert len(lines) == 1200
    assert {(w, n) for w in ("w0", "w1", "w2") for n in range(400)} == {
        (part.split("writer=")[1].split()[0], int(part.split(" n=")[1].split()[0]))
        for part in lines
    }
    kept = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path / "few" / "awe.log"), "w", "2", "400"],
        env=env,
        check=True,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )
    assert kept.returncode == 0
    assert sorted(p.name for p in (tmp_path / "few").iterdir() if p.name.endswith(".gz")) == [
        "awe.log.1.gz",
        "awe.log.2.gz",
    ]


def test_the_shipped_logrotate_file_rotates_a_live_log(tmp_path: Path) -> None:
    """The shipped file, pointed at a temporary folder and this user, passes logrotate's
    parser and, forced, rotates a file a process keeps open: the old lines move to awe.log.1,
    the live file is emptied in place, and the process's next line lands in it."""
    assert shutil.which("logrotate"), "apt-get install logrotate (.ci/run does)"
    shipped = (ROOT / "deploy" / "logrotate" / "awe").read_text()
    assert "/var/log/awe/*.log {" in shipped
    user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    folder = tmp_path / "log"
    folder.mkdir(mode=0o755)
    config = tmp_path / "awe.conf"
    config.write_text(
        shipped.replace("/var/log/awe/*.log", f"{folder}/*.log").replace(
            "su awe awe", f"su {user} {group}"
        )
    )
    live = folder / "awe.log"
    with live.open("a", buffering=1) as writer:
        writer.write("before rotation\n")
        rotated = subprocess.run(
            ["logrotate", "-v", "-f", "-s", str(tmp_path / "state"), str(config)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        writer.write("after rotation\n")
    out = rotated.stdout + rotated.stderr
    assert rotated.returncode == 0, out
    assert "error:" not in out, out
    assert (folder / "awe.log.1").read_text() == "before rotation\n"
    assert live.read_text().strip("\0") == "after rotation\n"
