"""Certificate checks, for ``awe certs check`` (one line per certificate) and ``awe doctor``
(one line for all): each parses, is not expired or expiring, its key is its own, and a CA of
the bundle signed it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from awe.core.config import Settings
from awe.ops import certs
from awe.ops.doctor import Context, Probe
from awe.ops.report import CheckResult, Outcome, Report, failed, passed, run_check, skipped, warned

WARN_DAYS = 30


def _targets(settings: Settings) -> list[tuple[Path, Path | None]]:
    """(certificate, its key) pairs: every file in the certs folder, and AWE_TLS_CERT."""
    folder = certs.folder_of(settings.home)
    found: list[tuple[Path, Path | None]] = []
    if folder.is_dir():
        for path in sorted(folder.glob("*.pem")):
            if path.name in (certs.BUNDLE, certs.PREVIOUS_CA):
                continue
            key = path.with_suffix(".key")
            found.append((path, key if key.exists() else None))
    if settings.tls_cert is not None and all(
        settings.tls_cert.resolve() != p.resolve() for p, _ in found
    ):
        found.append((settings.tls_cert, settings.tls_key))
    return found


def _trusted(settings: Settings) -> list[object]:
    folder = certs.folder_of(settings.home)
    bundle = folder / certs.BUNDLE
    trusted = certs.load_bundle(bundle) if bundle.exists() else []
    if settings.tls_client_ca is not None and settings.tls_client_ca.exists():
        trusted += certs.load_bundle(settings.tls_client_ca)
    return list(trusted)


def check_one(
    cert_path: Path,
    key_path: Path | None,
    trusted: list[object],
    now: datetime,
    warn_days: int,
    *,
    ours: bool = True,
) -> Outcome:
    """The worst of what one certificate shows."""
    info = certs.describe(cert_path)
    left = info.days_left(now)
    data = info.as_dict(now)
    if left < 0:
        return failed(
            f"{info.name} expired on {info.not_after:%Y-%m-%d}",
            f"awe certs rotate {info.name}",
            **data,
        )
    if key_path is not None and not certs.key_matches(cert_path, key_path):
        return failed(
            f"{key_path.name} is not the key of {info.name}",
            f"awe certs rotate {info.name}",
            **data,
        )
    if not info.is_ca and ours:  # another CA's certificate (AWE_TLS_CERT): its chain is its own
        if not trusted:
            return warned(
                f"{info.name}: no CA bundle to check it against", "awe certs init", **data
            )
        if certs.issued_by(cert_path, trusted) is None:  # type: ignore[arg-type]
            return failed(
                f"{info.name} is not signed by a CA of the bundle",
                f"awe certs rotate {info.name}",
                **data,
            )
    if left < warn_days:
        return warned(
            f"{info.name} expires in {left:.0f} day(s), on {info.not_after:%Y-%m-%d}",
            f"awe certs rotate {'ca' if info.is_ca else info.name}",
            **data,
        )
    return passed(f"{info.name}: valid until {info.not_after:%Y-%m-%d} ({left:.0f} days)", **data)


def report(settings: Settings, now: datetime, *, warn_days: int = WARN_DAYS) -> Report:
    """One check per certificate (``awe certs check``)."""
    trusted = _trusted(settings)
    folder = certs.folder_of(settings.home).resolve()
    results: list[CheckResult] = [
        run_check(
            f"tls.{cert.stem}",
            "tls",
            lambda c=cert, k=key: check_one(  # type: ignore[misc]
                c, k, trusted, now, warn_days, ours=c.resolve().parent == folder
            ),
        )
        for cert, key in _targets(settings)
    ]
    return Report.of(results)


def certificates(ctx: Context) -> Outcome:
    """Every certificate, in one line."""
    targets = _targets(ctx.settings)
    if not targets:
        return skipped("no certificate (awe certs init makes a CA; AWE_TLS_CERT names one)")
    found = report(ctx.settings, ctx.now)
    worst = [c for c in found.checks if c.status == found.status]
    if found.status == "pass":
        return passed(f"{len(found.checks)} certificate(s) valid", checked=len(found.checks))
    shown = "; ".join(c.message for c in worst[:3])
    fix = worst[0].fix if worst else None
    return failed(shown, fix) if found.status == "fail" else warned(shown, fix)


PROBES = [Probe("tls.certificates", "tls", "certificates valid, keys match, chain", certificates)]
