"""Settings: AWE_* variables, the older names, .env files, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from awe.core.config import Settings, load_settings, setting_env_names
from awe.core.config_sources import masked_url
from awe.core.errors import ConfigurationError


def test_defaults_put_sqlite_in_awe_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With nothing set, the database is ./.awe/awe.db (SQLite) and the API binds 127.0.0.1:8000."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.effective_database_url == f"sqlite:///{tmp_path / '.awe' / 'awe.db'}"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.environment == "development"
    assert settings.effective_log_format == "console"


def test_old_names_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """DATABASE_URL, LOG_LEVEL, ENVIRONMENT and DRY_RUN mean what AWE_* would; values normalise."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/awe")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("ENVIRONMENT", "Production")
    monkeypatch.setenv("DRY_RUN", "true")
    settings = load_settings()
    assert settings.database_url == "postgresql://u:p@db:5432/awe"
    assert settings.log_level == "DEBUG"
    assert settings.environment == "production"
    assert settings.dry_run is True
    assert settings.effective_log_format == "json"


def test_awe_prefix_wins_over_old_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """When both AWE_ENVIRONMENT and ENVIRONMENT are set, the AWE_ one is used."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("AWE_ENVIRONMENT", "production")
    assert load_settings().environment == "production"


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A .env file in the working directory sets values; the environment still overrides it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("AWE_PORT=9001\nLOG_LEVEL=WARNING\n", encoding="utf-8")
    monkeypatch.setenv("AWE_LOG_LEVEL", "ERROR")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.log_level == "ERROR"


def test_invalid_environment_names_variable_and_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ENVIRONMENT=nonsense fails with exit code 3, naming the variable and the allowed values."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVIRONMENT", "nonsense")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = info.value.message
    assert info.value.exit_code == 3
    assert "ENVIRONMENT='nonsense'" in message
    for allowed in ("development", "staging", "production"):
        assert allowed in message


def test_every_invalid_value_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Several bad variables are all reported in one message, each with what would be right."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWE_PORT", "70000")
    monkeypatch.setenv("DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = info.value.message
    assert "AWE_PORT='70000'" in message
    assert "less than or equal to 65535" in message
    assert "DATABASE_URL='mysql://x@y/z'" in message
    assert "sqlite:///" in message


def test_password_is_masked_in_url() -> None:
    """masked_url hides the password and keeps everything else."""
    assert masked_url("postgresql://u:s3cret@h:5/d") == "postgresql://u:***@h:5/d"
    assert masked_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_env_names_cover_every_field() -> None:
    """Every setting has an AWE_* variable listed first."""
    names = setting_env_names()
    assert set(names) == set(Settings.model_fields)
    assert all(env[0].startswith("AWE_") for env in names.values())


def test_bare_field_names_are_not_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """HOME, HOST and PORT (set by shells and platforms for other purposes) do not leak in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "1234")
    settings = load_settings()
    assert settings.home == Path(".awe")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_overrides_by_field_name_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """load_settings(port=...) overrides the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWE_PORT", "9000")
    assert load_settings(port=9100).port == 9100


def test_guessable_tokens_and_keys_are_configuration_errors(tmp_path: Path) -> None:
    """An admin token or an instance key under 32 characters stops awe (exit 3), naming the
    variable."""
    with pytest.raises(ConfigurationError, match="AWE_ADMIN_TOKEN") as caught:
        load_settings(_env_file=None, home=tmp_path, admin_token="short-token")
    assert caught.value.exit_code == 3
    with pytest.raises(ConfigurationError, match="AWE_SECRET_KEY"):
        load_settings(_env_file=None, home=tmp_path, secret_key="short-key")


def test_the_listen_url_must_be_postgresql(tmp_path: Path) -> None:
    """AWE_DATABASE_LISTEN_URL takes only a PostgreSQL URL (LISTEN is PostgreSQL's); a SQLite
    one is refused naming the variable, and setting one turns the pooler mode on."""
    with pytest.raises(ConfigurationError, match=r"AWE_DATABASE_LISTEN_URL=.*postgresql://"):
        load_settings(_env_file=None, home=tmp_path, database_listen_url="sqlite:///x.db")
    on = load_settings(_env_file=None, home=tmp_path, database_listen_url="postgresql://db/awe")
    assert on.behind_transaction_pooler
    off = load_settings(
        _env_file=None, home=tmp_path, database_listen_url="postgresql://db/awe",
        db_transaction_pooler=False,
    )  # fmt: skip
    assert not off.behind_transaction_pooler


def test_secrets_are_read_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AWE_JWT_SECRET_FILE (and DATABASE_URL_FILE, an older name's) read the value from a file,
    trailing newline dropped, as compose secrets are mounted; a value given both ways, or a
    file that cannot be read, is a clear configuration error naming the variable."""
    monkeypatch.chdir(tmp_path)
    secret = tmp_path / "jwt"
    secret.write_text("s" * 40 + "\n")
    url = tmp_path / "url"
    url.write_text("postgresql://awe:pw@db:5432/awe\n")
    monkeypatch.setenv("AWE_JWT_SECRET_FILE", str(secret))
    monkeypatch.setenv("DATABASE_URL_FILE", str(url))
    settings = load_settings()
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == "s" * 40
    assert settings.database_url == "postgresql://awe:pw@db:5432/awe"
    monkeypatch.setenv("AWE_JWT_SECRET", "t" * 40)
    with pytest.raises(ConfigurationError, match="AWE_JWT_SECRET_FILE and AWE_JWT_SECRET"):
        load_settings()
    monkeypatch.delenv("AWE_JWT_SECRET")
    monkeypatch.setenv("AWE_JWT_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"AWE_JWT_SECRET_FILE=.*cannot read it"):
        load_settings()


def test_a_bad_secret_or_url_is_named_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An invalid database URL read from a file is reported under its *_FILE variable with the
    password masked; an invalid secret from the environment is reported without its value."""
    monkeypatch.chdir(tmp_path)
    url = tmp_path / "url"
    url.write_text("mysql://awe:S3cretPw@db/awe\n")
    monkeypatch.setenv("AWE_DATABASE_URL_FILE", str(url))
    with pytest.raises(ConfigurationError) as bad_url:
        load_settings()
    assert "AWE_DATABASE_URL_FILE=" in str(bad_url.value)
    assert "S3cretPw" not in str(bad_url.value)
    monkeypatch.delenv("AWE_DATABASE_URL_FILE")
    monkeypatch.setenv("AWE_SECRET_KEY", "too-short-but-secret")
    with pytest.raises(ConfigurationError) as bad_key:
        load_settings()
    assert "AWE_SECRET_KEY" in str(bad_key.value)
    assert "too-short-but-secret" not in str(bad_key.value)
