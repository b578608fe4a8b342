"""A reverse proxy that serves web servers under path prefixes, as docs/web.md's nginx does.

``PrefixProxy({"/pgbatch": "http://127.0.0.1:8080"})`` listens on a free
loopback port; a request for ``/pgbatch/<rest>`` goes to
``http://127.0.0.1:8080/<rest>`` (the prefix stripped, like ``proxy_pass``
with a trailing slash) with the browser's headers and body plus
``X-Forwarded-For`` / ``X-Forwarded-Proto``, and the answer comes back as is:
status, every header (each ``Set-Cookie``), body, redirects not followed.
Anything else is a 404 of the proxy. The web servers behind it run with
``root_path`` set to their prefix (``pgbatch web --root-path``).
"""

from __future__ import annotations

from typing import Final

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pgbatch.web.serve import BackgroundServer

#: Headers that describe one hop, not the message: never forwarded.
HOP_HEADERS: Final = frozenset({"connection", "keep-alive", "transfer-encoding", "te",
                                "upgrade", "content-length", "content-encoding", "host"})
METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class PrefixProxy:
    """Path prefix -> upstream base URL; ``url`` once started (no trailing slash)."""

    def __init__(self, upstreams: dict[str, str]) -> None:
        self.upstreams = dict(upstreams)
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=METHODS)])
        self._server = BackgroundServer(app)
        self.url = self._server.url

    def start(self) -> PrefixProxy:
        """Start serving (a thread)."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> PrefixProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _forward(self, request: Request) -> Response:
        path = request.url.path
        found = [(p, u) for p, u in self.upstreams.items() if path.startswith(p + "/")]
        if not found:
            return PlainTextResponse("not proxied", status_code=404)
        prefix, upstream = found[0]
        rest = request.scope["raw_path"].decode("latin-1")[len(prefix):]
        query = request.url.query
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_HEADERS]
        client = request.client.host if request.client else "127.0.0.1"
        headers += [("x-forwarded-for", client), ("x-forwarded-proto", "http")]
        async with httpx.AsyncClient(follow_redirects=False, timeout=30.0) as http:
            answer = await http.request(request.method, upstream + rest + (f"?{query}" if query
                                                                            else ""),
                                        headers=headers, content=await request.body())
        response = Response(answer.content, status_code=answer.status_code)
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in answer.headers.multi_items() if k.lower() not in HOP_HEADERS
        ] + [(b"content-length", str(len(answer.content)).encode())]
        return response
