"""Logging in and out of the web UI, and ``/setup``: the page the one-time setup link opens.

Plain forms that POST back; ``next=`` returns only to a path on this site.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from awe.api.deps import DbDep, MetaDep, SettingsDep, actor_of
from awe.core.errors import AuthenticationFailed, AweError, TooManyRequests
from awe.services import auth, tokens
from awe.services import setup as setup_service
from awe.web import render
from awe.web.session import (
    COOKIE,
    Checked,
    Origin,
    clear_cookie,
    safe_next,
    set_cookie,
)

router = APIRouter(include_in_schema=False)
#: The setup page carries a secret in its URL: never cached, never sent on as a referrer.
PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _login_page(
    request: Request,
    *,
    status: int = 200,
    email: str = "",
    next_path: str = "/",
    headers: dict[str, str] | None = None,
    **values: object,
) -> HTMLResponse:
    return render.page(
        request,
        "login.html",
        status=status,
        headers=headers,
        email=email,
        next_path=next_path,
        **values,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    next_path: Annotated[str, Query(alias="next", max_length=2000)] = "/",
) -> Response:
    """The log-in form (or straight on, for a browser with a live session)."""
    target = safe_next(next_path)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        try:
            tokens.authenticate_browser(db, settings, cookie, ip=None)
        except AuthenticationFailed:
            pass
        else:
            return RedirectResponse(target, status_code=303)
    return _login_page(request, next_path=target, first_run=not setup_service.has_users(db))


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    _: Origin,
    db: DbDep,
    settings: SettingsDep,
    meta: MetaDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    """Check the password; on success set the session cookie and go on to ``next``."""
    target = safe_next(next_path)
    try:
        cookie, _session = auth.login_browser(
            db, settings, email=email, password=password, actor=actor_of(None, meta)
        )
    except TooManyRequests as exc:
        return _login_page(
            request,
            status=429,
            email=email,
            next_path=target,
            error=f"Too many failed log-ins: this account or address is locked."
            f" Try again in {exc.retry_after} s.",
            retry_after=exc.retry_after,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except AweError as exc:
        return _login_page(
            request, status=exc.http_status, email=email, next_path=target, error=exc.message
        )
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, settings, cookie)
    return response


@router.post("/logout")
def logout(viewer: Checked, db: DbDep, meta: MetaDep) -> Response:
    """End the session (its cookie stops working everywhere) and return to the log-in page."""
    assert viewer.principal.session_id is not None
    auth.logout(db, session_id=viewer.principal.session_id, actor=actor_of(viewer.principal, meta))
    response = RedirectResponse("/login?out=1", status_code=303)
    clear_cookie(response)
    return response


def _setup_page(request: Request, status: int = 200, **values: object) -> HTMLResponse:
    defaults: dict[str, object] = {"token": "", "email": "", "display_name": "", "error": None}
    return render.page(
        request, "setup.html", status=status, headers=PRIVATE, **{**defaults, **values}
    )


@router.get(setup_service.SETUP_PATH, response_class=HTMLResponse)
def setup_page(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    """The form that creates the first admin."""
    return _setup_page(request, token=token)


@router.post(setup_service.SETUP_PATH, response_class=HTMLResponse)
def setup_submit(
    request: Request,
    _: Origin,
    db: DbDep,
    meta: MetaDep,
    token: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password_again: Annotated[str, Form(max_length=1024)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Create the first admin, or show the form again with what was wrong."""
    again = {"token": token, "email": email, "display_name": display_name}
    if password != password_again:
        return _setup_page(request, 400, error="the two passwords differ", **again)
    try:
        user = setup_service.first_admin(
            db,
            token=token,
            email=email,
            password=password,
            display_name=display_name,
            actor=actor_of(None, meta),
        )
    except AweError as exc:
        return _setup_page(request, exc.http_status, error=exc.message, **again)
    return _setup_page(request, 201, done=True, email=user.email)
