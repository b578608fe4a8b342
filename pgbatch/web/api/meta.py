"""``GET /api/v1/csrf``: the CSRF token for API clients that do not use a bearer token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pgbatch.web import csrf, db
from pgbatch.web.api.common import ok
from pgbatch.web.openapi import ApiRoute


async def get_csrf(request: Request) -> Response:
    """The token to send as ``X-CSRF-Token`` (its cookie is set on this response)."""
    principal = request.scope["state"]["principal"]
    return ok({"token": csrf.token_for(request, db.config(request)),
               "principal": {"name": principal.name, "kind": principal.kind}})


def routes() -> list[Route]:
    """The API's meta routes."""
    return [ApiRoute("/csrf", get_csrf, name="api_csrf",
                     summary="the CSRF token (and cookie) for actions without a bearer token; "
                             "also says who the caller is",
                     result={"type": "object", "properties": {
                         "token": {"type": "string"}, "principal": {"type": "object"}}})]
