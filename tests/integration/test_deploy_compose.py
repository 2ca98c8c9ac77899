"""The shipped compose file, Dockerfile and secrets script, checked by the tools that read them:
the compose specification's JSON schema (check-jsonschema), hadolint, and the script run for
real; and the compose file wires what the other deploy files expect."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML
from sqlalchemy.engine import make_url

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A checker installed with the dev extra (in the venv's bin) or on the PATH."""
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    assert found, f"{name} is missing: make dev installs it"
    return found


def compose() -> dict:  # type: ignore[type-arg]
    """The compose file, parsed."""
    return YAML(typ="safe").load(DEPLOY / "compose.yaml")


def test_compose_file_follows_the_compose_specification() -> None:
    """check-jsonschema validates compose.yaml against the compose specification's schema."""
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=DEPLOY, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    """hadolint reports no warning, error or note about deploy/Dockerfile."""
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "info", "Dockerfile"],
        cwd=DEPLOY, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_compose_runs_every_role_with_health_checks_and_file_secrets() -> None:
    """Two API processes, scaled workers, a scheduler, PostgreSQL, pgbouncer, Caddy, Prometheus
    and Grafana; each long-running service has a health check (the awe API ones from the
    image); awe reads its secrets from files only, and every secret names a file; the API
    processes trust forwarded addresses from Caddy's fixed address only."""
    services = compose()["services"]
    for name in ("api-1", "api-2", "worker", "scheduler", "postgres", "pgbouncer", "caddy",
                 "prometheus", "grafana", "migrate"):  # fmt: skip
        assert name in services, name
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("postgres", "pgbouncer", "worker", "scheduler", "prometheus"):
        assert services[name]["healthcheck"]["test"], name
    assert "HEALTHCHECK" in (DEPLOY / "Dockerfile").read_text()
    for name in ("api-1", "api-2", "worker", "scheduler"):
        env = services[name]["environment"]
        assert all(key.endswith("_FILE") for key in env if "URL" in key or "SECRET" in key)
        assert set(services[name]["secrets"]) >= {"awe_database_url", "awe_jwt_secret"}
    caddy_address = services["caddy"]["networks"]["default"]["ipv4_address"]
    for name in ("api-1", "api-2"):  # X-Forwarded-For trusted from Caddy, and Caddy only
        assert services[name]["environment"]["FORWARDED_ALLOW_IPS"] == caddy_address
    upstreams = services["caddy"]["environment"]["AWE_UPSTREAMS"].split()
    assert upstreams == ["api-1:8000", "api-2:8000"]
    prometheus = YAML(typ="safe").load(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["awe-api"]["static_configs"][0]["targets"] == upstreams
    assert jobs["awe-worker"]["dns_sd_configs"][0]["names"] == ["worker"]


def test_the_secrets_script_makes_every_file_compose_mounts(tmp_path: Path) -> None:
    """make-secrets.sh writes each secret file compose names in a folder only its owner may
    enter (the files themselves readable by the containers' own users); the
    URLs go through pgbouncer (queries) and straight to PostgreSQL (LISTEN), with the one
    password; a second run keeps every file as it was."""
    copy = tmp_path / "deploy"
    copy.mkdir()
    shutil.copy(DEPLOY / "make-secrets.sh", copy)
    subprocess.run(["sh", str(copy / "make-secrets.sh")], check=True, capture_output=True)
    files = {
        name: copy / spec["file"].removeprefix("./") for name, spec in compose()["secrets"].items()
    }
    made = {}
    assert stat.S_IMODE((copy / "secrets").stat().st_mode) == 0o700
    for name, path in files.items():
        assert path.is_file(), name
        assert path.parent == copy / "secrets", name
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, name
        made[name] = path.read_text()
        assert made[name].strip(), name
    password = made["postgres_password"].strip()
    pooled = make_url(made["awe_database_url"].strip())
    direct = make_url(made["awe_database_listen_url"].strip())
    assert (pooled.host, pooled.port, pooled.password) == ("pgbouncer", 6432, password)
    assert (direct.host, direct.port, direct.password) == ("postgres", 5432, password)
    assert f'"awe" "{password}"' in made["pgbouncer_userlist"]
    subprocess.run(["sh", str(copy / "make-secrets.sh")], check=True, capture_output=True)
    assert {name: path.read_text() for name, path in files.items()} == made
