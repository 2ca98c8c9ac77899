"""Settings handed to another awe process, and the secret values among them (to mask)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from awe.core.config import Settings, setting_env_names


def settings_environment(
    settings: Settings, *, leave_out: frozenset[str] = frozenset()
) -> dict[str, str]:
    """The ``AWE_*`` variables that make another awe process read these same settings (paths
    made absolute, secrets in clear): for awe's own CLI run on the worker's behalf, never for
    user code. ``leave_out``: field names not to pass on."""
    names = setting_env_names()
    env: dict[str, str] = {}
    for field_name in Settings.model_fields:
        value = getattr(settings, field_name)
        if value is None or field_name in leave_out:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = value.absolute()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[names[field_name][0]] = str(value)
    return env


def secret_values(settings: Settings) -> list[str]:
    """The secret values of the settings (keys, tokens, API keys, database passwords), longest
    first; those under 6 characters are left out (masking them would hide ordinary words)."""
    found = [
        value.get_secret_value()
        for name in Settings.model_fields
        if isinstance(value := getattr(settings, name), SecretStr)
    ]
    for url in (settings.database_url, settings.database_listen_url):
        password = make_url(url).password if url else None
        if password:
            found.append(str(password))
    return sorted({v for v in found if len(v) >= 6}, key=len, reverse=True)
