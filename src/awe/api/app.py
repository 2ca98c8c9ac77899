"""The FastAPI application factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from awe import __version__, web
from awe.ai import pii
from awe.api import problems
from awe.api.observe import Metrics, Observe
from awe.api.routes import auth, health, ops, privacy, projects, runs, status
from awe.core import tracing
from awe.core.config import Settings, load_settings
from awe.core.logging import configure_for
from awe.services import audit
from awe.storage.database import Database, create_database


def app_from_environment() -> FastAPI:
    """The app of one process of ``awe serve --workers N``: settings and logging from the
    environment, as the parent read them."""
    settings = load_settings()
    configure_for(settings)
    return create_app(settings)


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    background: Callable[[], AbstractContextManager[None]] | None = None,
) -> FastAPI:
    """Build the API for ``settings``; the database handle is created here unless given.

    ``background`` is entered when the server starts and left when it shuts down (``awe up``
    runs its worker and scheduler there, so they stop before the process exits).
    """
    database = db or create_database(settings)
    pii.configure(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with background() if background is not None else nullcontext():
            yield
        audit.flush_failed_tokens()  # what was counted and not written yet
        if background is not None:  # awe up: this process's spans go out before it ends
            tracing.shutdown()
        if db is None:  # we made it, we close it
            database.dispose()

    app = FastAPI(
        title="awe",
        version=__version__,
        summary="AI Workflow Engine",
        docs_url="/docs",
        openapi_url="/openapi.json",
        lifespan=lifespan,
        responses=problems.RESPONSES,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.started = time.monotonic()
    app.state.metrics = Metrics(database, settings)
    tracing.configure("api")
    problems.install(app, pages=web.error_page)
    for router in (
        health.router,
        auth.router,
        projects.router,
        runs.router,
        ops.router,
        privacy.router,
    ):
        app.include_router(router, prefix="/api/v1")
    app.include_router(status.router)
    web.install(app)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Trace-Id"],
            expose_headers=["X-Request-Id", "X-Trace-Id"],
        )
    app.add_middleware(
        Observe,
        metrics=app.state.metrics,
        max_bytes=settings.max_request_bytes,
        upload_bytes=settings.knowledge_max_bytes,
    )
    return app
