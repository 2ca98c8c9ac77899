"""Rendering pages: one Jinja2 environment, the filters the templates use, and the headers every
page carries (a Content-Security-Policy without inline scripts or styles, no framing).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from awe import __version__

HERE = Path(__file__).parent
#: Scripts and styles from this origin only; no inline code, no framing, forms post back here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
#: Payloads longer than this are cut on pages (the whole value is a download away).
SHOWN_BYTES = 256 * 1024
#: Status → (icon, word) beside its colour, so status never rests on colour alone.
STATUS_ICONS = {
    "pending": "○",
    "ready": "◔",
    "waiting": "◔",
    "running": "▶",
    "succeeded": "✓",
    "failed": "✗",
    "dead": "☠",
    "cancelled": "⊘",
    "skipped": "↷",
    "queued": "◔",
}

environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html", "svg"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _iso(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def ago(value: datetime | str | None, now: datetime | None = None) -> str:
    """How long ago (or how soon), in words: '3 min ago', 'in 20 s'."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(_iso(value))
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def when(value: datetime | str | None) -> Markup:
    """A ``<time>`` element: relative text, the exact UTC time on hover (app.js may switch the
    title to local time)."""
    if not value:
        return Markup("—")
    iso = _iso(value)
    return Markup('<time datetime="{0}" title="{1}">{2}</time>').format(
        iso, iso.replace("T", " ").replace("+00:00", " UTC"), ago(value)
    )


def duration(start: datetime | str | None, end: datetime | str | None = None) -> str:
    """A span of time in short words: '850 ms', '12.3 s', '4 min 2 s', '3 h 5 min'."""
    if not start:
        return "—"
    first = datetime.fromisoformat(_iso(start))
    last = datetime.fromisoformat(_iso(end)) if end else datetime.now(UTC)
    seconds = max(0.0, (last - first).total_seconds())
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


@lru_cache(maxsize=256)
def status_badge(status: str | None) -> Markup:
    """A status as colour, icon and word (few distinct values: kept once drawn)."""
    name = escape(status or "unknown")
    icon = STATUS_ICONS.get(str(status), "•")
    html = f'<span class="badge s-{name}"><span aria-hidden="true">{icon}</span> {name}</span>'
    return Markup(html)  # noqa: S704 (the status is escaped; the icons are ours)


def pretty(value: Any) -> tuple[str, bool]:
    """A value as indented JSON, cut at SHOWN_BYTES: (the text, whether it was cut)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text.encode()) <= SHOWN_BYTES:
        return text, False
    return text.encode()[:SHOWN_BYTES].decode(errors="ignore"), True


#: A PII placeholder the scrubber left (``<EMAIL_1>``), once HTML-escaped.
_PLACEHOLDER = re.compile(r"&lt;([A-Z][A-Z_]*_[0-9A-Za-z]{1,16})&gt;")


def highlighted(text: str) -> Markup:
    """``text`` escaped, with the PII placeholders in it marked."""
    marked = _PLACEHOLDER.sub(r'<mark class="pii">&lt;\1&gt;</mark>', str(escape(text)))
    return Markup(marked)  # noqa: S704 (escaped above; the marks hold only [A-Za-z0-9_])


def short(value: str | None, length: int = 8) -> str:
    """The first characters of an id."""
    return (value or "")[:length]


environment.filters.update(
    ago=ago,
    when=when,
    duration=duration,
    badge=status_badge,
    short=short,
    pretty=pretty,
    highlighted=highlighted,
)
environment.globals.update(version=__version__)


FLASH_COOKIE = "awe_flash"


def redirect(url: str, message: str, *, level: str = "ok") -> RedirectResponse:
    """A 303 to ``url`` whose page shows ``message`` once (kept in a short cookie, so a link
    cannot make a page claim something happened)."""
    response = RedirectResponse(url, status_code=303)
    value = quote(json.dumps({"level": level, "message": message[:500]}))
    response.set_cookie(FLASH_COOKIE, value, max_age=60, httponly=True, samesite="strict")
    return response


def _flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        found = json.loads(unquote(raw))
    except ValueError:
        return None
    if not isinstance(found, dict) or found.get("level") not in ("ok", "error", "warning"):
        return None
    return {"level": str(found["level"]), "message": str(found.get("message", ""))[:500]}


def page(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render ``template`` with the request's session values; the page headers set."""
    session = getattr(request.state, "web", None)
    flashed = _flash(request)
    if flashed and not values.get("flash"):
        values["flash"] = flashed
    context = {
        "request": request,
        "session": session,
        "theme": request.cookies.get("awe_theme", "auto"),
        "tz": request.cookies.get("awe_tz", "utc"),
        "path": request.url.path,
        **values,
    }
    html = environment.get_template(template).render(**context)
    response = HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})
    if flashed:
        response.delete_cookie(FLASH_COOKIE)
    return response
