"""The web page: ``GET /`` serves ``page/index.html``, ``GET /static/{name}`` the files beside it.

Only plain file names directly inside ``page/`` are served (no sub-directories, no dot files),
so a request can never reach outside it.  The page holds no data of its own: it calls the
query API, which is where the optional bearer token applies.

Every page response carries the page's Content-Security-Policy as a real header (the ``<meta>``
tag in ``index.html`` repeats it for a copy of the file opened elsewhere, but a meta tag cannot
say ``frame-ancestors``), and refuses to be framed (``frame-ancestors 'none'`` and, for browsers
that predate it, ``X-Frame-Options: DENY``): nobody can overlay the page to steer a click.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from podtrace_collector.errors import NotFound

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
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
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
    return _serve("index.html")


@router.get("/static/{name}", summary="A file of the web page", include_in_schema=False)
def static(name: str) -> FileResponse:
    """A stylesheet, script or image of the page, by plain file name."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise _not_found(name)
    return _serve(name)


def _serve(name: str) -> FileResponse:
    path = PAGE_DIR / name
    content_type = CONTENT_TYPES.get(path.suffix.lower())
    # is_file() is False for directories and dangling links; resolve() guards against links out.
    if content_type is None or not path.is_file() or path.resolve().parent != PAGE_DIR.resolve():
        raise _not_found(name)
    return FileResponse(path, media_type=content_type, headers=_HEADERS)


def _not_found(name: str) -> NotFound:
    return NotFound(f"no page file {name[:128]!r}")
