"""``awe security check``: what makes this installation easy to attack, each with its fix —
weak or placeholder secrets, open registration, an admin token in production, clear-text
listeners beyond loopback, files others may write, members allowed privileged kinds, stored
workflows that put templated input into shell commands or call plain-http URLs, personal
tokens unused for 90 days, and a summary of recent security events."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from awe.engine import permissions
from awe.engine.registry import Registry, default_registry
from awe.ops import checks_host
from awe.ops.doctor import Context, with_outage
from awe.ops.report import Outcome, Report, failed, passed, run_check, warned
from awe.storage.auth_models import ApiToken, SecurityEvent
from awe.storage.engine_models import Workflow

STALE_TOKEN_DAYS = 90
EVENT_DAYS = 7
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_SECRET_REF = re.compile(r"\{\{\s*secrets\.")


def registration(ctx: Context) -> Outcome:
    """Anyone may register an account."""
    if not ctx.settings.registration_open:
        return passed("closed: admins create accounts")
    shown = "registration is open: anyone who reaches awe may make an account"
    fix = "AWE_REGISTRATION_OPEN=false; create users with awe admin create"
    return failed(shown, fix) if ctx.settings.environment == "production" else warned(shown, fix)


def admin_token(ctx: Context) -> Outcome:
    """An admin token is set (weak, or at all in production)."""
    strength = checks_host.admin_token(ctx)
    if strength.status != "pass" or ctx.settings.admin_token is None:
        return strength
    if ctx.settings.environment == "production":
        return warned(
            "AWE_ADMIN_TOKEN is set in production: one shared secret with every power, no user",
            "unset it; give admins personal tokens (awe tokens create) instead",
        )
    return strength


def member_kinds(ctx: Context, registry: Registry | None = None) -> Outcome:
    """Members may use kinds that run code or read the machine."""
    chosen = registry or default_registry
    allowed = permissions.member_capabilities(ctx.settings, chosen)
    risky = []
    for name in sorted(chosen.names()):
        try:
            info = chosen.info(name)
        except Exception:  # noqa: BLE001, S112 - a kind that cannot load is usable by no one
            continue
        if info.privileged and name in allowed:
            risky.append(name)
        risky += [
            f"{name}:{key}" for key in sorted(info.privileged_keys) if f"{name}:{key}" in allowed
        ]
    if risky:
        return failed(
            f"members may use privileged kinds: {', '.join(risky)} (they run code or read the"
            " worker's files)",
            "remove them from AWE_MEMBER_KINDS",
            kinds=risky,
        )
    return passed("members may use no privileged kind")


def _steps(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in spec.get("steps", []) if isinstance(s, dict)]


def stored_workflows(ctx: Context) -> Outcome:
    """Stored workflows' latest versions: templated input in shell commands, plain http."""
    with ctx.db.read() as conn:
        newest = (
            select(Workflow.project_key, Workflow.name, func.max(Workflow.version).label("v"))
            .group_by(Workflow.project_key, Workflow.name)
            .subquery()
        )
        rows = conn.execute(
            select(Workflow.name, Workflow.version, Workflow.spec).join(
                newest,
                (newest.c.project_key == Workflow.project_key)
                & (newest.c.name == Workflow.name)
                & (newest.c.v == Workflow.version),
            )
        ).all()
    findings = []
    for row in rows:
        for step in _steps(row.spec):
            params = step.get("with") or {}
            where = f"{row.name} v{row.version} step {step.get('id')}"
            command = str(params.get("command") or params.get("script") or "")
            if step.get("kind") == "shell" and any(
                not _SECRET_REF.match(t) for t in _TEMPLATE.findall(command)
            ):
                findings.append(f"{where}: templated input in a shell command (pass it as env)")
            url = str(params.get("url") or "")
            if step.get("kind") in ("http", "notify") and url.startswith("http://"):
                host = urlsplit(url).hostname or "a host"  # never the user:password part
                findings.append(f"{where}: calls {host} over plain http")
    if findings:
        return warned(
            f"{len(findings)} finding(s) in stored workflows: {'; '.join(findings[:3])}",
            "give shell steps their input through `env:`; use https URLs",
            findings=findings[:100],
        )
    return passed(f"{len(rows)} stored workflow(s): no templated shell input, no plain http")


def stale_tokens(ctx: Context) -> Outcome:
    """Personal tokens nobody used for 90 days (or ever, 90 days after they were made)."""
    cutoff = ctx.now - timedelta(days=STALE_TOKEN_DAYS)
    with ctx.db.read() as conn:
        rows = conn.execute(
            select(ApiToken.prefix, ApiToken.name).where(
                ApiToken.revoked_at.is_(None),
                (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > ctx.now),
                func.coalesce(ApiToken.last_used_at, ApiToken.created_at) < cutoff,
            )
        ).all()
    if rows:
        shown = ", ".join(f"{r.name} ({r.prefix}…)" for r in rows[:5])
        return warned(
            f"{len(rows)} personal token(s) unused for {STALE_TOKEN_DAYS} days: {shown}",
            "revoke them on the Account page, or DELETE /api/v1/auth/tokens/ID",
            tokens=[r.prefix for r in rows[:100]],
        )
    return passed(f"no personal token has gone unused for {STALE_TOKEN_DAYS} days")


def recent_events(ctx: Context) -> Outcome:
    """Lockouts, failed logins and token misuse of the last days, by kind."""
    since = ctx.now - timedelta(days=EVENT_DAYS)
    with ctx.db.read() as conn:
        counted = dict(
            conn.execute(
                select(SecurityEvent.kind, func.count())
                .where(SecurityEvent.at >= since)
                .group_by(SecurityEvent.kind)
            ).all()
        )
    data = {str(k): int(v) for k, v in counted.items()}
    if not data:
        return passed(f"no security event in {EVENT_DAYS} days")
    shown = ", ".join(f"{n} {k}" for k, n in sorted(data.items(), key=lambda i: -i[1]))
    alarming = any("lock" in k or "misuse" in k or "invalid" in k for k in data)
    message = f"last {EVENT_DAYS} days: {shown}"
    if alarming:
        return warned(message, "awe audit list --security for who, from where", events=data)
    return passed(message, events=data)


PROBES = [
    ("security.signing_secret", checks_host.signing_secret),
    ("security.admin_token", admin_token),
    ("security.registration", registration),
    ("security.tls", checks_host.bind),
    ("security.file_permissions", checks_host.permissions),
    ("security.secrets_folder", checks_host.secrets_folder),
    ("security.member_kinds", member_kinds),
    ("security.stored_workflows", stored_workflows),
    ("security.stale_tokens", stale_tokens),
    ("security.recent_events", recent_events),
]


def check(ctx: Context) -> Report:
    """Every security check."""
    results = [run_check(i, "security", lambda p=probe: p(ctx)) for i, probe in PROBES]  # type: ignore[misc]
    return Report.of(with_outage(ctx, results))
