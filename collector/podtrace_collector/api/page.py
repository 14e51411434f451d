"""The web page: ``GET /`` serves ``page/index.html``, ``/static/…`` the files beside it.

The files are served by Starlette's ``StaticFiles``, which keeps every path inside ``page/``.
The page holds no data of its own: it calls the query API, which is where the optional bearer
token applies.

Every page response carries the page's Content-Security-Policy as a real header (the ``<meta>``
tag in ``index.html`` repeats it for a copy of the file opened elsewhere, but a meta tag cannot
say ``frame-ancestors``), and refuses to be framed (``frame-ancestors 'none'`` and, for browsers
that predate it, ``X-Frame-Options: DENY``): nobody can overlay the page to steer a click.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PAGE_DIR = Path(__file__).parent / "page"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
# Everything the page uses comes from the collector itself; the browser enforces it.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
# The page is small and changes with each release: let browsers revalidate rather than guess.
# Links out (a trace viewer) must not learn the collector's address from the Referer.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["page"])


@router.get("/", summary="The web page", response_class=FileResponse, include_in_schema=False)
def index() -> FileResponse:
    """The single-page UI: rollouts, and the blast radius drawn on the dependency graph."""
    return FileResponse(
        PAGE_DIR / "index.html", media_type=CONTENT_TYPES[".html"], headers=_HEADERS
    )


class _PageFiles(StaticFiles):
    """Starlette's static files (paths kept inside the folder, GET/HEAD, 304s), with the page's
    headers and content types."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        content_type = CONTENT_TYPES.get(Path(path).suffix.lower())
        if content_type is not None and response.status_code in (200, 304):
            response.headers["content-type"] = content_type
        return response


def files() -> StaticFiles:
    """The ASGI app serving ``page/`` under ``/static`` (mounted by ``api.app``)."""
    return _PageFiles(directory=PAGE_DIR)
