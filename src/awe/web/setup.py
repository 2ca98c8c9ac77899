"""``/setup``: the page the one-time setup link opens, to create the first admin.

A plain form that POSTs back (no script); the token travels in the form, and the page asks
browsers not to cache it or send it on as a referrer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from awe.api.deps import DbDep, MetaDep, actor_of
from awe.core.errors import AweError
from awe.services import setup as setup_service

router = APIRouter(include_in_schema=False)
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _page(status: int = 200, **values: object) -> HTMLResponse:
    defaults: dict[str, object] = {"token": "", "email": "", "display_name": "", "error": None}
    html = _templates.get_template("setup.html").render(**{**defaults, **values})
    return HTMLResponse(html, status_code=status, headers=HEADERS)


@router.get(setup_service.SETUP_PATH, response_class=HTMLResponse)
def setup_page(token: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    """The form that creates the first admin."""
    return _page(token=token)


@router.post(setup_service.SETUP_PATH, response_class=HTMLResponse)
def setup_submit(
    request: Request,
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
        return _page(400, error="the two passwords differ", **again)
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
        return _page(exc.http_status, error=exc.message, **again)
    return _page(201, done=True, email=user.email)
