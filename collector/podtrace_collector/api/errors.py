"""The one table from query errors to HTTP, and the API's error envelope.

Every error the API answers, from any route, is ``{"error": {"code": "...", "message": "..."}}``:
the code comes from the domain error (``errors.QueryError.code``), the status from ``STATUS``.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from podtrace_collector.errors import (
    BadRequest,
    NoStore,
    NotFound,
    QueryError,
    UnknownRevision,
    UnknownWorkload,
)

STATUS: dict[type[QueryError], int] = {
    BadRequest: 400,  # BadTime too: it is a BadRequest
    UnknownWorkload: 404,
    UnknownRevision: 404,
    NotFound: 404,
    NoStore: 503,
}

# Codes for the statuses FastAPI/Starlette raise themselves (routing, validation).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    429: "overloaded",
    503: "unavailable",
}


def status_of(exc: QueryError) -> int:
    """The HTTP status of a query error: its nearest class in ``STATUS`` (400 if none)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    """The API's one error shape: ``{"error": {"code": ..., "message": ...}}``."""
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def query_error_response(exc: QueryError) -> JSONResponse:
    """The answer to a query error."""
    return error_response(status_of(exc), exc.code, str(exc))
