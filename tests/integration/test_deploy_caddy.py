"""The shipped Caddyfile, checked by Debian's Caddy (``caddy validate``, no warning), as shipped
and with its mTLS-to-backends transport switched on; and /livez, its health probe, answers
without the database, so an outage does not take every API process out of rotation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from awe.api.app import create_app
from tests.conftest import make_settings

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "caddy" / "Caddyfile"


def validate(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """caddy validate on ``path``."""
    caddy = shutil.which("caddy")
    assert caddy, "caddy is missing: .ci/run installs Debian's caddy package"
    return subprocess.run(
        [caddy, "validate", "--config", str(path), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **env},
    )


def mtls_variant(tmp_path: Path) -> Path:
    """The Caddyfile with its commented mTLS transport in place of the plain one."""
    text = CADDYFILE.read_text()
    plain = "\t\ttransport http {\n\t\t\tkeepalive 2s\n\t\t\tdial_timeout 2s\n\t\t}\n"
    assert plain in text
    commented = [line for line in text.splitlines() if line.startswith("#\t\t")]
    assert commented, "the mTLS transport block is missing"
    mtls = "\n".join(line[1:] for line in commented) + "\n"
    for name in ("ca.pem", "caddy.pem", "caddy.key"):
        mtls = mtls.replace(f"/etc/caddy/awe/{name}", str(tmp_path / name))
    variant = tmp_path / "Caddyfile"
    variant.write_text(text.replace(plain, mtls))
    return variant


@pytest.mark.parametrize("shape", ["shipped", "with-env", "mtls"])
def test_caddy_validates_the_caddyfile_without_a_warning(shape: str, tmp_path: Path) -> None:
    """Valid, and Caddy has nothing to warn about."""
    env = {"AWE_SITE": "awe.example.org", "AWE_UPSTREAMS": "10.0.0.1:8000 10.0.0.2:8000"}
    if shape == "mtls":
        from awe.ops import certs

        folder = tmp_path / "certs"
        certs.init_ca(folder)
        issued = certs.issue(folder, "caddy", kind="client")
        shutil.copy(folder / "ca.pem", tmp_path / "ca.pem")
        shutil.copy(issued.path, tmp_path / "caddy.pem")
        shutil.copy(issued.path.with_suffix(".key"), tmp_path / "caddy.key")
        result = validate(mtls_variant(tmp_path), **env)
    else:
        result = validate(CADDYFILE, **(env if shape == "with-env" else {}))
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "Valid configuration" in said
    assert '"level":"warn"' not in said
    assert '"level":"error"' not in said


def test_livez_answers_while_the_database_is_down(tmp_path: Path) -> None:
    """With the database unreachable, /livez still answers 200 (and /public/status says 503)."""
    settings = make_settings(tmp_path, database_url="postgresql://awe@127.0.0.1:9/awe")
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").json() == {"status": "ok"}
        assert client.get("/public/status").status_code == 503
