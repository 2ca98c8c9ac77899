"""Browser sessions and CSRF.

Logging in from the UI opens a login session like the API's; the browser holds it as an
HttpOnly, SameSite=Lax cookie (Secure under https and in production) whose token is good only
as a cookie. Logging out, changing the password and rotating the signing secret end it. The API
under ``/api/v1`` never reads the cookie.

Unsafe methods are checked twice: the browser's ``Sec-Fetch-Site`` must say same-origin (or
none: typed by the user), else ``Origin`` must match ``Host``; and the form (or htmx's
``X-CSRF-Token`` header) must carry the session's token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response

from awe.api.deps import DbDep, SettingsDep
from awe.core.config import Settings
from awe.core.errors import AuthenticationFailed, AweError, PermissionDenied
from awe.services import auth, tokens
from awe.services.auth import UserInfo
from awe.services.tokens import Principal

COOKIE = "awe_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginNeeded(AweError):
    """This page needs you to log in."""

    code = "authentication"
    http_status = 401

    def __init__(self, next_path: str) -> None:
        super().__init__("log in to see this page")
        self.next_path = next_path


@dataclass(frozen=True)
class WebSession:
    """Who is looking at a page, and the token their forms carry."""

    principal: Principal
    user: UserInfo
    csrf: str

    @property
    def is_admin(self) -> bool:
        """Admins see every project and the admin pages."""
        return self.principal.is_admin


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/``: never another origin."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 32 for c in value) or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def login_url(request: Request) -> str:
    """The log-in page, returning to this page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(safe_next(here), safe="/")


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def current(request: Request, db: DbDep, settings: SettingsDep) -> WebSession:
    """The page's viewer from the session cookie; LoginNeeded without a live session."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise LoginNeeded(login_url(request))
    try:
        principal = tokens.authenticate_browser(db, settings, cookie, ip=_client_ip(request))
    except AuthenticationFailed:
        raise LoginNeeded(login_url(request)) from None
    assert principal.user_id is not None
    assert principal.session_id is not None
    session = WebSession(
        principal=principal,
        user=auth.get_user(db, principal.user_id),
        csrf=tokens.csrf_token(db, settings, principal.session_id),
    )
    request.state.web = session
    return session


Viewer = Annotated[WebSession, Depends(current)]


async def admin(viewer: Viewer) -> WebSession:
    """The viewer, if an admin; 403 otherwise."""
    if not viewer.is_admin:
        raise PermissionDenied("this page is for admins")
    return viewer


AdminViewer = Annotated[WebSession, Depends(admin)]


def check_origin(request: Request) -> None:
    """Refuse a cross-site unsafe request (a form on another site posting here)."""
    if request.method in SAFE_METHODS:
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):
            raise PermissionDenied(f"a {site} request may not change anything here")
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
            raise PermissionDenied("a request from another origin may not change anything here")
    elif origin == "null":
        raise PermissionDenied("a request from an opaque origin may not change anything here")


async def checked(request: Request, viewer: Viewer) -> WebSession:
    """The viewer of an unsafe request that came from our own pages (origin and token)."""
    check_origin(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise PermissionDenied("the form is stale or did not come from this site; reload the page")
    return viewer


async def checked_admin(viewer: Annotated[WebSession, Depends(checked)]) -> WebSession:
    """An admin's unsafe request from our own pages; 403 for anyone else."""
    return await admin(viewer)


async def anonymous_form(request: Request) -> None:
    """Forms posted before there is a session (log-in, setup): no token to check, so the
    browser must say where the form came from (every browser sends Origin on a POST)."""
    if "sec-fetch-site" not in request.headers and "origin" not in request.headers:
        raise PermissionDenied("this form must be posted from its page in a browser")
    check_origin(request)


Checked = Annotated[WebSession, Depends(checked)]
CheckedAdmin = Annotated[WebSession, Depends(checked_admin)]
Origin = Annotated[None, Depends(anonymous_form)]


def set_cookie(response: Response, request: Request, settings: Settings, value: str) -> None:
    """Give the browser its session cookie."""
    response.set_cookie(
        COOKIE,
        value,
        max_age=settings.refresh_token_days * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or settings.environment == "production",
        path="/",
    )


def clear_cookie(response: Response) -> None:
    """Take the session cookie back."""
    response.delete_cookie(COOKIE, path="/")
