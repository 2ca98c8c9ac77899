"""HTTPS and mTLS for real: `awe certs` makes a CA and certificates, `awe serve` answers
HTTPS with them and, with --tls-require-client-cert, completes the handshake only for clients
holding a certificate the CA signed; `awe certs check` warns before expiry and fails after."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import awe_env, run_awe, running_server


def tls_client(folder: Path, cert: str | None) -> httpx.Client:
    """A client trusting the CA of ``folder``, holding certificate ``cert`` (or none)."""
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    if cert is not None:
        context.load_cert_chain(str(folder / f"{cert}.pem"), str(folder / f"{cert}.key"))
    return httpx.Client(verify=context, timeout=5)


def test_mtls_accepts_a_signed_client_and_refuses_others(tmp_path: Path) -> None:
    """A client with a certificate from the CA gets answers; one without a certificate, and
    one with a certificate from another CA, fail the handshake. Keys are written 0600."""
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir()
    other.mkdir()
    for args in (["certs", "init"], ["certs", "issue", "server", "--san", "127.0.0.1"],
                 ["certs", "issue", "ops-laptop", "--client"]):  # fmt: skip
        done = run_awe(*args, home=home)
        assert done.returncode == 0, done.stdout + done.stderr
    assert run_awe("certs", "init", home=other).returncode == 0
    assert run_awe("certs", "issue", "intruder", "--client", home=other).returncode == 0
    folder = home / "certs"
    for key in folder.glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert run_awe("db", "upgrade", home=home).returncode == 0
    serve = ["serve", "--host", "127.0.0.1", "--tls-cert", str(folder / "server.pem"),
             "--tls-key", str(folder / "server.key"), "--tls-client-ca",
             str(folder / "ca-bundle.pem"), "--tls-require-client-cert"]  # fmt: skip
    with (
        tls_client(folder, "ops-laptop") as good,
        running_server(*serve, home=home, env=awe_env(home), client=good) as base,
    ):
        assert base.startswith("https://")
        assert good.get(f"{base}/api/v1/health").json()["status"] == "ok"
        with tls_client(folder, None) as anonymous, pytest.raises(httpx.TransportError):
            anonymous.get(f"{base}/api/v1/health")
        stranger = ssl.create_default_context(cafile=str(folder / "ca.pem"))
        stranger.load_cert_chain(
            str(other / "certs" / "intruder.pem"), str(other / "certs" / "intruder.key")
        )
        with (
            httpx.Client(verify=stranger, timeout=5) as intruder,
            pytest.raises(httpx.TransportError),
        ):
            intruder.get(f"{base}/api/v1/health")


def test_certs_check_warns_before_expiry_and_list_shows_every_certificate(tmp_path: Path) -> None:
    """A certificate valid for 10 days warns under --warn-days 30 (exit 0; 1 with --strict)
    naming the rotate command; rotation keeps its SANs and its length; a key that is not its
    certificate's fails."""
    assert run_awe("certs", "init", home=tmp_path).returncode == 0
    assert (
        run_awe(
            "certs", "issue", "api", "--san", "api.internal", "--days", "10", home=tmp_path
        ).returncode
        == 0
    )
    checked = run_awe("certs", "check", "--json", home=tmp_path)
    assert checked.returncode == 0
    found = {c["id"]: c for c in json.loads(checked.stdout)["checks"]}
    assert found["tls.api"]["status"] == "warn"
    assert found["tls.api"]["fix"] == "awe certs rotate api"
    assert found["tls.ca"]["status"] == "pass"
    assert run_awe("certs", "check", "--strict", home=tmp_path).returncode == 1
    assert run_awe("certs", "rotate", "api", home=tmp_path).returncode == 0
    listed = {
        c["name"]: c for c in json.loads(run_awe("certs", "list", "--json", home=tmp_path).stdout)
    }
    assert listed["api"]["sans"] == ["api.internal"]
    assert listed["api"]["days_left"] > 9  # same length as before: 10 days
    folder = tmp_path / "certs"
    assert run_awe("certs", "issue", "other", home=tmp_path).returncode == 0
    (folder / "api.key").write_bytes((folder / "other.key").read_bytes())
    broken = json.loads(run_awe("certs", "check", "--json", home=tmp_path).stdout)
    api = next(c for c in broken["checks"] if c["id"] == "tls.api")
    assert api["status"] == "fail"
    assert "is not the key of api" in api["message"]
