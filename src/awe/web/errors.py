"""Errors of web pages, from the same mapping as the API's problems: an error page, a redirect
to the log-in page when a session is needed, and for htmx requests a fragment (or HX-Redirect).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from awe.web import render
from awe.web.session import LoginNeeded

#: Paths that are not web pages: their errors stay problem+json.
NOT_PAGES = ("/api/", "/docs", "/openapi.json", "/metrics", "/health", "/livez", "/public/", "/mcp")


def is_page(request: Request) -> bool:
    """True for a path the web UI answers."""
    path = request.url.path
    return not any(path == p.rstrip("/") or path.startswith(p) for p in NOT_PAGES)


def page(request: Request, status: int, title: str, detail: str, exc: Exception) -> Response | None:
    """The web answer to an error on a page path; None for the other paths."""
    if not is_page(request):
        return None
    htmx = request.headers.get("hx-request") == "true"
    if isinstance(exc, LoginNeeded):
        if htmx:
            return Response(status_code=401, headers={"HX-Redirect": exc.next_path})
        return RedirectResponse(exc.next_path, status_code=303)
    if htmx:  # shown in the page's message area (app.js), never swapped over the page
        html = render.environment.get_template("_flash.html").render(level="error", message=detail)
        return HTMLResponse(
            html, status_code=status, headers={**render.HEADERS, "X-Awe-Fragment": "message"}
        )
    return render.page(request, "error.html", status=status, title=title, detail=detail)
