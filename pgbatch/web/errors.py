"""Errors as the API and the pages show them.

A pgbatch error (``PgBatchError``, raised by the SQL API with its ``PB``
SQLSTATE) becomes JSON ``{"code": "PB003", "error": "JobNotFound",
"message": ...}`` with a 4xx status under ``/api/``, and the error page
elsewhere. Failures of the web layer itself (authentication, CSRF, an
unknown route) are :class:`WebError`: same shape, ``code`` ``HTTP<status>``.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pgbatch import _errors
from pgbatch._errors import PgBatchError

#: Status of each pgbatch error family; the first match in order wins.
_STATUS: tuple[tuple[type[PgBatchError], int], ...] = (
    (_errors.JobNotFound, 404),
    (_errors.JobExecutionNotFound, 404),
    (_errors.ScheduleNotFound, 404),
    (_errors.JobNotRegistered, 404),
    (_errors.ValidationError, 400),
    (_errors.InvalidState, 409),
    (_errors.DedupConflict, 409),
    (_errors.DuplicateJobId, 409),
)


class WebError(Exception):
    """A failure of the web layer: ``status``, a class-like ``name`` and a message."""

    def __init__(self, status: int, name: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.headers = headers


def status_of(exc: PgBatchError) -> int:
    """The HTTP status of a pgbatch error: 404 unknown id, 400 bad input, 409 otherwise."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 409


def error_body(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """``(status, body, headers)`` of any error the handlers see."""
    if isinstance(exc, PgBatchError):
        return status_of(exc), {"code": exc.sqlstate, "error": type(exc).__name__,
                                "message": exc.message}, None
    if isinstance(exc, WebError):
        return exc.status, {"code": f"HTTP{exc.status}", "error": exc.name,
                            "message": exc.message}, exc.headers
    if isinstance(exc, HTTPException):
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return exc.status_code, {"code": f"HTTP{exc.status_code}", "error": name,
                                 "message": str(exc.detail)}, dict(exc.headers or {}) or None
    return 500, {"code": "HTTP500", "error": "InternalError",
                 "message": "internal error (see the server log)"}, None


def wants_json(request: Request) -> bool:
    """API paths (and clients asking for JSON) get JSON errors; browsers get the page."""
    path = request.url.path[len(request.scope.get("root_path", "")):] \
        if request.url.path.startswith(request.scope.get("root_path", "")) else request.url.path
    return path.startswith("/api/") or path == "/metrics" or \
        "application/json" in request.headers.get("accept", "")


async def handle_error(request: Request, exc: Exception) -> Response:
    """The one exception handler: JSON for the API, the error page for pages."""
    status, body, headers = error_body(exc)
    if wants_json(request):
        return JSONResponse(body, status_code=status, headers=headers)
    from pgbatch.web.templating import render  # noqa: PLC0415 (templating imports errors)

    return render(request, "error.html", {"status": status, "error": body},
                  status_code=status, headers=headers)
