"""What routes depend on: the database, the settings, the request's meta and its principal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from awe.core.config import Settings
from awe.core.errors import AuthenticationFailed, PermissionDenied
from awe.services import tokens
from awe.services.audit import Actor
from awe.services.tokens import Principal
from awe.storage.database import Database

# The trivial dependencies are coroutines: FastAPI runs sync ones on a thread each, per request.


async def get_db(request: Request) -> Database:
    """The app's database."""
    db: Database = request.app.state.db
    return db


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class Meta:
    """Where a request came from and the ids it carries."""

    ip: str | None
    request_id: str
    trace_id: str


async def get_meta(request: Request) -> Meta:
    """The request's address, request id and trace id (set by the middleware)."""
    return Meta(
        ip=request.client.host if request.client else None,
        request_id=request.state.request_id,
        trace_id=request.state.trace_id,
    )


MetaDep = Annotated[Meta, Depends(get_meta)]


def current_principal(
    request: Request, db: DbDep, settings: SettingsDep, meta: MetaDep
) -> Principal:
    """The principal of the Authorization header; 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed("this needs a bearer token: Authorization: Bearer <token>")
    return tokens.authenticate(db, settings, value.strip(), ip=meta.ip)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def admin_principal(principal: CurrentPrincipal) -> Principal:
    """The principal, if it is an admin (or the admin token); 403 otherwise."""
    if not principal.is_admin:
        raise PermissionDenied("this needs the admin role or the admin token")
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]


def actor_of(principal: Principal | None, meta: Meta) -> Actor:
    """The audit actor of a request."""
    if principal is None:
        return Actor("anonymous", None, meta.ip, meta.trace_id)
    return principal.actor(meta.ip, meta.trace_id)
