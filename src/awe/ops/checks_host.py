"""Doctor checks of this machine: the configuration, the secrets folder and its modes, and the
home folder (writable, free disk, no file others may write)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from awe.core import crypto
from awe.core.crypto import key_path
from awe.ops import certs
from awe.ops.doctor import Context, Probe
from awe.ops.report import Outcome, failed, passed, skipped, warned
from awe.storage import instance_state

#: Placeholders people leave in configuration files.
_PLACEHOLDERS = ("changeme", "change-me", "secret", "password", "your-secret", "example")
#: How many entries under the home the permission check looks at, at most.
_SCAN_LIMIT = 20_000
_GiB = 1024**3


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def _chmod(path: Path, change: Callable[[int], int]) -> None:
    """Change a file's or folder's mode without following a symlink put in its place since it
    was looked at (a path others may write could be swapped for a link to a private file);
    anything else than a regular file or a folder (a FIFO, a device) is left alone."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        found = os.fstat(descriptor)
        if stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode):
            os.fchmod(descriptor, change(stat.S_IMODE(found.st_mode)))
    finally:
        os.close(descriptor)


def environment(ctx: Context) -> Outcome:
    """Settings that do not fit the environment awe runs in."""
    s = ctx.settings
    sqlite = s.effective_database_url.startswith("sqlite")
    data = {"environment": s.environment, "backend": "sqlite" if sqlite else "postgresql"}
    if s.environment == "production":
        if s.effective_log_format != "json":
            return warned(
                "production logs are console lines, not JSON", "unset AWE_LOG_FORMAT", **data
            )
        if s.registration_open:
            return warned(
                "anyone may register an account in production",
                "set AWE_REGISTRATION_OPEN=false and create users with awe admin create",
                **data,
            )
    return passed(f"{s.environment}, on {data['backend']}", **data)


def providers(ctx: Context) -> Outcome:
    """A configured provider without the key it needs."""
    s = ctx.settings
    missing = []
    for name, key, variable in [
        ("openai", s.openai_api_key, "AWE_OPENAI_API_KEY"),
        ("anthropic", s.anthropic_api_key, "AWE_ANTHROPIC_API_KEY"),
    ]:
        compatible = name == "openai" and s.openai_base_url  # a local OpenAI-compatible server
        if name in (s.llm_provider, s.embedding_provider) and key is None and not compatible:
            missing.append(variable)
    if missing:
        return failed(
            f"the {s.llm_provider} provider is configured without {', '.join(missing)}",
            f"set {', '.join(missing)}, or AWE_LLM_PROVIDER=local",
        )
    return passed(f"llm: {s.llm_provider}, embeddings: {s.embedding_provider}")


def ingest_root(ctx: Context) -> Outcome:
    """AWE_INGEST_ROOT names a folder that exists."""
    root = ctx.settings.ingest_root
    if root is None:
        return passed("not set: ingest steps may not read paths from this machine")
    if not root.is_dir():
        return failed(f"AWE_INGEST_ROOT={root} is not a folder", f"mkdir -p {root}, or unset it")
    return passed(f"ingest steps may read under {root.resolve()}")


def dotenv(ctx: Context) -> Outcome:
    """A .env file others may read (it often holds secrets)."""
    path = Path(".env")
    if not path.is_file():
        return passed("no .env file here")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return failed(
            f".env is readable by others (mode {mode:o})", "chmod 600 .env (or awe doctor --fix)"
        )
    return passed(".env is private (mode 600)")


def fix_dotenv(ctx: Context) -> str:
    """chmod 600 .env."""
    path = Path(".env")
    if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
        _chmod(path, lambda _: 0o600)
        return "chmod 600 .env"
    return ""


def _private_files(ctx: Context) -> list[Path]:
    """Files that must be 600: the secrets folder's, and the private keys of the certs."""
    folder = key_path(ctx.settings).parent
    found = [p for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else []
    certs_folder = certs.folder_of(ctx.settings.home)
    if certs_folder.is_dir():
        found += sorted(certs_folder.glob("*.key"))
    return [p for p in found if not p.is_symlink()]


def secrets_folder(ctx: Context) -> Outcome:
    """$AWE_HOME/secrets and certs are mode 700, their secret files 600."""
    folder = key_path(ctx.settings).parent
    if not folder.exists():
        return warned(
            f"{folder} does not exist yet (it is made on first start)", "awe setup (or awe up)"
        )
    wrong = []
    for place in (folder, certs.folder_of(ctx.settings.home)):
        if place.is_dir() and stat.S_IMODE(place.stat().st_mode) != 0o700:
            wrong.append(f"{place} is {stat.S_IMODE(place.stat().st_mode):o}, not 700")
    for entry in _private_files(ctx):
        mode = stat.S_IMODE(entry.lstat().st_mode)
        if mode & 0o077:
            wrong.append(f"{entry.name} is {mode:o}, not 600")
    if wrong:
        return failed("; ".join(wrong), "awe doctor --fix (chmod 700 the folders, 600 the files)")
    return passed(f"{folder} is 700 and its files 600 (certificate keys too)")


def fix_secrets_folder(ctx: Context) -> str:
    """chmod 700 the secrets and certs folders, 600 the secret files (made when missing)."""
    folder = key_path(ctx.settings).parent
    changed = []
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        changed.append(f"made {folder}")
    for place in (folder, certs.folder_of(ctx.settings.home)):
        if place.is_dir() and stat.S_IMODE(place.stat().st_mode) != 0o700:
            _chmod(place, lambda _: 0o700)
            changed.append(f"chmod 700 {place}")
    for entry in _private_files(ctx):
        if stat.S_IMODE(entry.lstat().st_mode) & 0o077:
            try:
                _chmod(entry, lambda _: 0o600)
            except OSError as exc:
                changed.append(f"could not chmod {entry.name}: {exc.strerror}")
                continue
            changed.append(f"chmod 600 {entry.name}")
    return ", ".join(changed)


def instance_key(ctx: Context) -> Outcome:
    """This machine has the instance key the database was set up with."""
    with ctx.db.read() as conn:
        recorded = instance_state.get(conn, instance_state.INSTANCE_KEY_FINGERPRINT)
    if ctx.settings.secret_key is None and not key_path(ctx.settings).exists():
        if recorded is None:
            return warned("no instance key yet (it is made on first start)", "awe setup")
        return failed(
            f"the database was set up with instance key {recorded}, and this machine has none",
            f"copy {key_path(ctx.settings)} from the first machine, or set AWE_SECRET_KEY",
        )
    key = crypto.instance_key(ctx.settings)
    if recorded is not None and recorded != key.fingerprint:
        return failed(
            f"this machine's instance key is {key.fingerprint} ({key.source}); the database was"
            f" set up with {recorded}: sealed secrets will not open",
            "set the AWE_SECRET_KEY (or copy the key file) the database was set up with",
        )
    return passed(f"{key.fingerprint} ({key.source})", fingerprint=key.fingerprint)


def _weak(value: str) -> str | None:
    lowered = value.lower()
    if any(p in lowered for p in _PLACEHOLDERS):
        return "it contains a placeholder word"
    if len(set(value)) < 10:
        return f"it has only {len(set(value))} distinct characters"
    return None


def signing_secret(ctx: Context) -> Outcome:
    """AWE_JWT_SECRET, when set, is not a placeholder or a repeated character."""
    value = ctx.settings.jwt_secret
    if value is None:
        return passed("a random secret kept sealed in the database")
    problem = _weak(value.get_secret_value())
    if problem:
        return failed(
            f"AWE_JWT_SECRET is weak: {problem}",
            "unset it (awe keeps a random one), or set 32+ random characters",
        )
    return passed("AWE_JWT_SECRET is set and long enough")


def admin_token(ctx: Context) -> Outcome:
    """AWE_ADMIN_TOKEN, when set, is long and not a placeholder."""
    value = ctx.settings.admin_token
    if value is None:
        return passed("not set: admin work needs an admin's login or personal token")
    problem = _weak(value.get_secret_value())
    if problem:
        return failed(
            f"AWE_ADMIN_TOKEN is weak: {problem}",
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return passed(f"set, {len(value.get_secret_value())} characters")


def home(ctx: Context) -> Outcome:
    """The home folder exists and this user can write in it."""
    folder = ctx.settings.home
    if not folder.exists():
        return failed(f"{folder} does not exist", "awe setup (or awe doctor --fix)")
    if not folder.is_dir():
        return failed(f"{folder} is not a folder", f"move it away; awe keeps its data in {folder}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return failed(f"cannot write in {folder}: {exc.strerror}", f"chown -R $USER {folder}")
    return passed(f"{folder.resolve()} is writable")


def fix_home(ctx: Context) -> str:
    """Make the home folder (mode 700) when it is missing."""
    folder = ctx.settings.home
    if folder.exists():
        return ""
    folder.mkdir(parents=True, mode=0o700)
    return f"made {folder}"


def free_disk(ctx: Context) -> Outcome:
    """Free space where the home is."""
    folder = ctx.settings.home if ctx.settings.home.exists() else Path.cwd()
    usage = shutil.disk_usage(folder)
    share = usage.free / usage.total if usage.total else 0.0
    data = {"free_bytes": usage.free, "total_bytes": usage.total}
    shown = f"{usage.free / _GiB:.1f} GiB free ({share:.0%})"
    if usage.free < _GiB // 2 or share < 0.02:
        return failed(shown, "free disk space: awe db vacuum, awe backup prune", **data)
    if usage.free < 2 * _GiB or share < 0.10:
        return warned(shown, "free disk space soon: awe backup prune", **data)
    return passed(shown, **data)


def _writable_by_others(folder: Path) -> list[Path]:
    """The home and entries under it that others may write (symlinks not followed)."""
    found = [folder] if stat.S_IMODE(folder.stat().st_mode) & 0o002 else []
    for count, (root, dirs, files) in enumerate(os.walk(folder)):
        if count > _SCAN_LIMIT:
            break
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
        for name in [*dirs, *files]:
            path = Path(root, name)
            if not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) & 0o002:
                found.append(path)
    return found


def permissions(ctx: Context) -> Outcome:
    """Nothing under the home is writable by others, and others cannot enter the home (where
    the database and secrets are)."""
    folder = ctx.settings.home
    if not folder.is_dir():
        return skipped(f"{folder} does not exist")
    writable = _writable_by_others(folder)
    if writable:
        shown = ", ".join(str(p) for p in writable[:5])
        return failed(
            f"{len(writable)} entr{'y' if len(writable) == 1 else 'ies'} others may write: {shown}",
            "awe doctor --fix (removes write access for others)",
            paths=[str(p) for p in writable[:50]],
        )
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        return warned(
            f"other users may enter {folder} (mode {mode:o}) and read the database there",
            "awe doctor --fix (chmod 700 the home)",
        )
    return passed(f"{folder} is 700 and nothing under it is writable by others")


def fix_permissions(ctx: Context) -> str:
    """Take write access from others under the home; chmod 700 the home."""
    folder = ctx.settings.home
    if not folder.is_dir():
        return ""
    writable = _writable_by_others(folder)
    for path in writable:
        try:
            _chmod(path, lambda mode: mode & ~0o002)
        except OSError:  # gone, or a symlink now: nothing of ours to repair
            continue
    parts = [f"took write access from others on {len(writable)} entries"] if writable else []
    if stat.S_IMODE(folder.stat().st_mode) & 0o077:
        _chmod(folder, lambda _: 0o700)
        parts.append(f"chmod 700 {folder}")
    return "; ".join(parts)


def bind(ctx: Context) -> Outcome:
    """The API listens beyond this machine only with TLS in front or configured."""
    s = ctx.settings
    if _loopback(s.host):
        return passed(f"listens on {s.host} (this machine only)")
    if s.tls_cert is not None:
        if s.tls_client_ca is not None and not s.tls_require_client_cert:
            return warned(
                f"listens on {s.host} with TLS; client certificates are checked when given but"
                " not required, and nothing else uses them",
                "AWE_TLS_REQUIRE_CLIENT_CERT=true for mTLS",
            )
        return passed(f"listens on {s.host} with TLS ({s.tls_cert})")
    return warned(
        f"listens on {s.host} without TLS: passwords and tokens cross the network in clear",
        "awe certs issue server --server, then AWE_TLS_CERT/AWE_TLS_KEY (or a proxy with TLS)",
    )


PROBES = [
    Probe("config.environment", "configuration", "settings fit the environment", environment),
    Probe("config.providers", "configuration", "providers have their keys", providers),
    Probe("config.ingest_root", "configuration", "AWE_INGEST_ROOT exists", ingest_root),
    Probe("config.dotenv", "configuration", ".env is private", dotenv, fix_dotenv),
    Probe("config.bind", "configuration", "no clear-text listener beyond loopback", bind),
    Probe(
        "secrets.folder", "secrets", "secrets 700, files 600", secrets_folder, fix_secrets_folder
    ),
    Probe("secrets.instance_key", "secrets", "the instance key opens the database", instance_key),
    Probe("secrets.signing_secret", "secrets", "the signing secret is strong", signing_secret),
    Probe("secrets.admin_token", "secrets", "the admin token is strong", admin_token),
    Probe("fs.home", "filesystem", "the home is writable", home, fix_home),
    Probe("fs.free_disk", "filesystem", "free disk space", free_disk),
    Probe("fs.permissions", "filesystem", "nothing others may write", permissions, fix_permissions),
]
