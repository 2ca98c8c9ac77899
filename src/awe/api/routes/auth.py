"""Users and sessions: register, log in, refresh, log out, me, password; personal API tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from awe.api.deps import CurrentPrincipal, DbDep, MetaDep, SettingsDep, actor_of
from awe.api.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    LoginIn,
    PasswordChange,
    RefreshIn,
    SetupIn,
    TokenPairPublic,
    UserCreate,
    UserPublic,
)
from awe.core.errors import PermissionDenied
from awe.services import auth, tokens
from awe.services import setup as setup_service

router = APIRouter(tags=["auth"])


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def register(
    body: UserCreate, db: DbDep, settings: SettingsDep, meta: MetaDep
) -> dict[str, object]:
    """Create an account (a member); refused when registration is closed."""
    user = auth.register(
        db,
        settings,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        actor=actor_of(None, meta),
    )
    return user.as_dict()


@router.post("/auth/setup", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def setup(body: SetupIn, db: DbDep, meta: MetaDep) -> dict[str, object]:
    """Create the first admin with the one-time setup token `awe up` printed (no users yet)."""
    user = setup_service.first_admin(
        db,
        token=body.token,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        actor=actor_of(None, meta),
    )
    return user.as_dict()


@router.post("/auth/login", response_model=TokenPairPublic)
def login(body: LoginIn, db: DbDep, settings: SettingsDep, meta: MetaDep) -> dict[str, object]:
    """Email and password for an access token and a refresh token."""
    pair = auth.login(
        db, settings, email=body.email, password=body.password, actor=actor_of(None, meta)
    )
    return pair.__dict__


@router.post("/auth/refresh", response_model=TokenPairPublic)
def refresh(body: RefreshIn, db: DbDep, settings: SettingsDep, meta: MetaDep) -> dict[str, object]:
    """A new token pair; the refresh token given is used up (using it again ends the session)."""
    return auth.refresh(db, settings, body.refresh_token, actor=actor_of(None, meta)).__dict__


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: CurrentPrincipal, db: DbDep, meta: MetaDep) -> None:
    """End this session: its tokens stop working at once."""
    if principal.session_id is None:
        raise PermissionDenied("only a login session can log out; revoke API tokens instead")
    auth.logout(db, session_id=principal.session_id, actor=actor_of(principal, meta))


@router.get("/auth/me", response_model=UserPublic)
def me(principal: CurrentPrincipal, db: DbDep) -> dict[str, object]:
    """The user this token belongs to."""
    if principal.user_id is None:
        raise PermissionDenied("the admin token belongs to no user")
    return auth.get_user(db, principal.user_id).as_dict()


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    body: PasswordChange, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> None:
    """Change the password; every session of the user ends (log in again)."""
    if principal.user_id is None:
        raise PermissionDenied("the admin token belongs to no user")
    auth.change_password(
        db,
        user_id=principal.user_id,
        current=body.current_password,
        new=body.new_password,
        actor=actor_of(principal, meta),
    )


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=ApiTokenCreated)
def create_token(
    body: ApiTokenCreate, principal: CurrentPrincipal, db: DbDep, meta: MetaDep
) -> dict[str, object]:
    """A personal API token for automation; the token is in this answer only."""
    if principal.user_id is None:
        raise PermissionDenied("the admin token belongs to no user")
    token, info = tokens.create_api_token(
        db,
        user_id=principal.user_id,
        name=body.name,
        days=body.expires_in_days,
        actor=actor_of(principal, meta),
    )
    return {**info.as_dict(), "token": token}


@router.get("/tokens", response_model=list[ApiTokenPublic])
def list_tokens(principal: CurrentPrincipal, db: DbDep) -> list[dict[str, object]]:
    """Your personal API tokens."""
    if principal.user_id is None:
        return []
    return [t.as_dict() for t in tokens.list_api_tokens(db, user_id=principal.user_id)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, principal: CurrentPrincipal, db: DbDep, meta: MetaDep) -> None:
    """Revoke one of your tokens."""
    if principal.user_id is None:
        raise PermissionDenied("the admin token belongs to no user")
    tokens.revoke_api_token(
        db, user_id=principal.user_id, token_id=token_id, actor=actor_of(principal, meta)
    )
