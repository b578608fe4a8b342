"""The OpenAPI document, generated from the API routes' own metadata.

Every API route is an :class:`ApiRoute`: a Starlette ``Route`` that also
says what it does (``summary``), its parameters, whether it is an action
(admin only, CSRF-checked unless bearer-authenticated) and its responses.
``GET /api/v1/openapi.json`` lists every ``ApiRoute`` of the app, so a route
cannot exist without being documented.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

API_PREFIX: Final = "/api/v1"
#: The JSON shape of every error.
ERROR_SCHEMA: Final = {
    "type": "object",
    "required": ["code", "error", "message"],
    "properties": {
        "code": {"type": "string", "description": "PB SQLSTATE (PB003), or HTTP<status> for "
                                                  "failures of the web layer"},
        "error": {"type": "string", "description": "the error class (JobNotFound, ReadOnly, …)"},
        "message": {"type": "string"},
    },
}


@dataclass(frozen=True)
class Param:
    """One parameter of an API route."""

    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema_type: str = "string"
    required: bool = False
    fmt: str | None = None

    def document(self) -> dict[str, Any]:
        """The OpenAPI parameter object."""
        schema: dict[str, Any] = {"type": self.schema_type}
        if self.fmt:
            schema["format"] = self.fmt
        return {"name": self.name, "in": self.where, "description": self.description,
                "required": self.required or self.where == "path", "schema": schema}


#: The header every action accepts.
IDEMPOTENCY_KEY: Final = Param(
    "Idempotency-Key", "header",
    "makes a retried action repeat the same operator call (its request_id)")


class ApiRoute(Route):
    """A route under ``/api/v1`` that documents itself.

    ``path`` is relative to the prefix (``"/jobs/{job_id}"``); ``action``
    routes are POSTs that need an admin credential; ``result`` is the JSON
    schema of a success.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], *, name: str, summary: str,
                 params: Sequence[Param] = (), action: bool = False,
                 result: dict[str, Any] | None = None, description: str = "",
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(API_PREFIX + path, endpoint, methods=["POST" if action else "GET"],
                         name=name)
        self.summary = summary
        self.params = tuple(params)
        self.action = action
        self.result = result or {"type": "object"}
        self.description = description
        self.body = body

    def document(self) -> dict[str, Any]:
        """The OpenAPI operation object."""
        responses: dict[str, Any] = {
            "200": {"description": "success",
                    "content": {"application/json": {"schema": self.result}}},
            "400": {"description": "bad input (nothing changed)", "content": _error()},
            "401": {"description": "authentication required", "content": _error()},
            "404": {"description": "unknown id", "content": _error()},
        }
        if self.action:
            responses["403"] = {"description": "read-only credential or server, or CSRF "
                                               "token missing", "content": _error()}
            responses["409"] = {"description": "the target is not in a state that allows "
                                               "this (typed result)", "content": _error()}
        op: dict[str, Any] = {"operationId": self.name, "summary": self.summary,
                              "parameters": [p.document() for p in self.params],
                              "responses": responses}
        if self.description:
            op["description"] = self.description
        if self.body is not None:
            op["requestBody"] = {"content": {"application/json": {"schema": self.body}}}
        if self.action:
            op["security"] = [{"bearer": []}, {"basic": []}]
        return op


def _error() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def document(routes: Sequence[BaseRoute], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every ``ApiRoute`` in ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if isinstance(route, ApiRoute):
            method = "post" if route.action else "get"
            paths.setdefault(re.sub(r"{(\w+)(:\w+)?}", r"{\1}", route.path), {})[method] = \
                route.document()
    return {
        "openapi": "3.1.0",
        "info": {"title": "pgbatch", "version": version,
                 "description": "The pgbatch REST API: every call is one SQL API function. "
                                "Errors carry the PB code; actions need an admin credential."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
        },
    }


async def openapi_json(request: Request) -> Response:
    """``GET /api/v1/openapi.json``."""
    from pgbatch import __version__  # noqa: PLC0415

    return JSONResponse(document(request.app.routes, __version__))


def routes() -> list[Route]:
    """The document's own route."""
    return [ApiRoute("/openapi.json", openapi_json, name="api_openapi",
                     summary="this OpenAPI document")]
