"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext

from fastapi import FastAPI

from awe import __version__
from awe.ai import pii
from awe.api import problems
from awe.api.routes import health
from awe.core.config import Settings
from awe.storage.database import Database, create_database


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
        if db is None:  # we made it, we close it
            database.dispose()

    app = FastAPI(
        title="awe",
        version=__version__,
        summary="AI Workflow Engine",
        docs_url="/docs",
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    problems.install(app)
    app.include_router(health.router, prefix="/api/v1")
    return app
