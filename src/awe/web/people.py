"""Admin (users, the audit log, security events) and the viewer's own account (password,
personal API tokens, theme and time zone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from awe.api.deps import DbDep, MetaDep, actor_of
from awe.core.errors import AweError, ValidationFailed
from awe.services import audit, auth, tokens
from awe.web import render
from awe.web.forms import parse_time
from awe.web.session import (
    AdminViewer,
    Checked,
    CheckedAdmin,
    Viewer,
    WebSession,
    clear_cookie,
)

router = APIRouter(include_in_schema=False)
Text = Annotated[str | None, Query(max_length=100)]
LIST_LIMIT = 200


@router.get("/admin", response_class=HTMLResponse)
def admin_page(
    request: Request,
    viewer: AdminViewer,
    db: DbDep,
    action: Text = None,
    actor_id: Annotated[str | None, Query(max_length=36)] = None,
    kind: Text = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """Users; the audit log and security events, filtered."""
    moment = parse_time(since, "since")
    return render.page(
        request,
        "admin.html",
        users=auth.list_users(db),
        entries=audit.list_audit(
            db, action=action, actor_id=actor_id, since=moment, limit=LIST_LIMIT
        ),
        events=audit.list_security_events(db, kind=kind, since=moment, limit=LIST_LIMIT),
        filters={
            "action": action or "",
            "actor_id": actor_id or "",
            "kind": kind or "",
            "since": since or "",
        },
    )


@router.post("/admin/users")
def create_user(
    viewer: CheckedAdmin,
    db: DbDep,
    meta: MetaDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(pattern="^(admin|member)$")] = "member",
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Create a user with a role."""
    user = auth.create_user(
        db,
        email=email,
        password=password,
        role=role,
        display_name=display_name,
        actor=actor_of(viewer.principal, meta),
    )
    return render.redirect("/admin", f"User {user.email} created.")


@router.post("/admin/users/{user_id}")
def update_user(
    user_id: str,
    viewer: CheckedAdmin,
    db: DbDep,
    meta: MetaDep,
    change: Annotated[str, Form(max_length=20)],
) -> Response:
    """Make admin or member, deactivate or reactivate."""
    changes: dict[str, tuple[str | None, bool | None]] = {
        "admin": ("admin", None),
        "member": ("member", None),
        "deactivate": (None, False),
        "activate": (None, True),
    }
    if change not in changes:
        raise ValidationFailed(f"change {change!r} is not one of {', '.join(changes)}")
    role, active = changes[change]
    auth.update_user(
        db, user_id, role=role, is_active=active, actor=actor_of(viewer.principal, meta)
    )
    return RedirectResponse("/admin", status_code=303)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, viewer: Viewer, db: DbDep) -> HTMLResponse:
    """Password, personal API tokens, theme and time zone."""
    return _account(request, db, viewer)


def _account(
    request: Request,
    db: DbDep,
    viewer: WebSession,
    *,
    status: int = 200,
    flash: dict[str, str] | None = None,
    new_token: str | None = None,
) -> HTMLResponse:
    assert viewer.user.id is not None
    return render.page(
        request,
        "account.html",
        status=status,
        api_tokens=tokens.list_api_tokens(db, user_id=viewer.user.id),
        new_token=new_token,
        flash=flash,
    )


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
    new_again: Annotated[str, Form(max_length=1024)],
) -> Response:
    """Set a new password: every session ends, this one too (log in again)."""
    if new != new_again:
        return _account(
            request,
            db,
            viewer,
            status=400,
            flash={"level": "error", "message": "the two new passwords differ"},
        )
    try:
        auth.change_password(
            db,
            user_id=viewer.user.id,
            current=current,
            new=new,
            actor=actor_of(viewer.principal, meta),
        )
    except AweError as exc:
        return _account(
            request,
            db,
            viewer,
            status=exc.http_status,
            flash={"level": "error", "message": exc.message},
        )
    response = RedirectResponse("/login?changed=1", status_code=303)
    clear_cookie(response)
    return response


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    viewer: Checked,
    db: DbDep,
    meta: MetaDep,
    name: Annotated[str, Form(max_length=100)],
    days: Annotated[str, Form(max_length=5)] = "",
) -> HTMLResponse:
    """A new personal API token, shown this once."""
    lifetime = int(days) if days.strip().isdigit() else None
    token, _ = tokens.create_api_token(
        db, user_id=viewer.user.id, name=name, days=lifetime, actor=actor_of(viewer.principal, meta)
    )
    return _account(request, db, viewer, new_token=token)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: str, viewer: Checked, db: DbDep, meta: MetaDep) -> Response:
    """Revoke one of the viewer's personal tokens."""
    tokens.revoke_api_token(
        db, user_id=viewer.user.id, token_id=token_id, actor=actor_of(viewer.principal, meta)
    )
    return RedirectResponse("/account", status_code=303)


@router.post("/account/preferences")
def preferences(
    viewer: Checked,
    theme: Annotated[str, Form(pattern="^(auto|light|dark)$")] = "auto",
    tz: Annotated[str, Form(pattern="^(utc|local)$")] = "utc",
) -> Response:
    """Theme and time zone, kept in cookies (the page is drawn with them: no flash)."""
    response = RedirectResponse("/account", status_code=303)
    for name, value in (("awe_theme", theme), ("awe_tz", tz)):
        response.set_cookie(name, value, max_age=365 * 86400, samesite="lax", path="/")
    return response
