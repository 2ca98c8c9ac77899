"""The web UI: server-rendered pages (Jinja2, htmx and its SSE extension vendored as static
files) in the same app as the API, calling services/ only."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from awe.web import library, live, login, ops, people, render, run, runs
from awe.web.errors import page as error_page

__all__ = ["error_page", "install"]


def install(app: FastAPI) -> None:
    """Serve the pages and their static files on ``app``."""
    app.mount("/static", StaticFiles(directory=render.HERE / "static"), name="static")
    for module in (login, runs, live, run, ops, library, people):
        app.include_router(module.router)
