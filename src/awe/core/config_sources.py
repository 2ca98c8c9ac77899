"""Where a setting's value came from, for load_settings: ``<VARIABLE>_FILE`` files (Docker and
compose secrets, systemd credentials), and error messages that name the variable the user set
without ever showing a secret's value."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from awe.core.config import Settings, setting_env_names
from awe.core.errors import ConfigurationError

#: Settings that may be read from a file named by ``<VARIABLE>_FILE`` (Docker and compose
#: secrets, systemd credentials): the secrets, and the database URLs (they hold a password).
FILE_SETTINGS = frozenset(
    {name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)}
    | {"database_url", "database_listen_url"}
)


def secret_files(
    names: dict[str, list[str]],
    environ: Mapping[str, str],
    given: dict[str, Any],
    files: dict[str, str],
) -> dict[str, str]:
    """``AWE_JWT_SECRET_FILE=/run/secrets/jwt`` reads AWE_JWT_SECRET from that file (its
    trailing newline dropped); ``files`` learns which variable named the file, by field. Only
    the process environment is read for these (not ``.env``). Setting a variable both ways is
    an error, as is a file that cannot be read."""
    found: dict[str, str] = {}
    for field in sorted(FILE_SETTINGS):
        primary = names[field][0]
        for variable in names[field]:
            path = environ.get(f"{variable}_FILE")
            if not path or primary in given:
                continue
            also = next((name for name in names[field] if name in environ), None)
            if also is not None:
                raise ConfigurationError(
                    f"{variable}_FILE and {also} are both set: keep one of them"
                )
            try:
                found[primary] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
                files[field] = f"{variable}_FILE"
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigurationError(
                    f"{variable}_FILE={path!r}: cannot read it ({type(exc).__name__}:"
                    f" {exc.strerror if isinstance(exc, OSError) else 'not UTF-8 text'})"
                ) from None
            break
    return found


def describe_error(
    error: Mapping[str, Any], environ: Mapping[str, str], files: Mapping[str, str]
) -> str:
    """Turn one pydantic error into 'VAR=value: what was wrong' using the variable the user set
    (``files``: the settings read from a ``*_FILE`` variable, by field). A secret's value is
    never shown, and a URL's password is masked."""
    given = str(error["loc"][0]) if error["loc"] else "?"
    names = setting_env_names()
    field_name = next((f for f, aliases in names.items() if given in (f, *aliases)), given)
    candidates = names.get(field_name, [field_name])
    upper_environ = {key.upper(): key for key in environ}
    variable = next((name for name in candidates if name in upper_environ), candidates[0])
    shown: Any = environ.get(upper_environ.get(variable, variable), error.get("input"))
    if field_name in files:
        variable = files[field_name]
    if field_name in FILE_SETTINGS:
        shown = masked_url(str(shown)) if field_name.endswith("_url") else "***"
    message = str(error["msg"])
    ctx = error.get("ctx") or {}
    if error["type"] == "literal_error" and "expected" in ctx:
        message = f"must be one of {ctx['expected']}"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return f"{variable}={shown!r} is invalid: {message}"


def masked_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    parsed = make_url(url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)
