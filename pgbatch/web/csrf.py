"""CSRF protection of every action: a signed double-submit token.

The server gives each browser a cookie ``pgbatch_csrf`` holding a random
value and its HMAC under ``WebConfig.secret`` (SameSite=Strict, HttpOnly).
Every page form carries the same token in a hidden ``csrf_token`` field
(templates: ``{{ csrf_field() }}``); API calls send it in the
``X-CSRF-Token`` header (``GET /api/v1/csrf`` returns it). An action is
accepted only when the submitted token equals the cookie's and its signature
checks: another site can make a browser send the cookie, but cannot read it
to put it in the form. Requests authenticated by a bearer token are exempt
(see :mod:`pgbatch.web.auth`): a browser never attaches one by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgbatch.web.config import WebConfig
from pgbatch.web.errors import WebError

COOKIE: Final = "pgbatch_csrf"
FIELD: Final = "csrf_token"
#: The form field of a rendered form's request key: a random value per rendered form,
#: which an action takes as its ``Idempotency-Key`` (the form sent twice repeats the
#: first call: :func:`pgbatch.web.params.request_id`).
REQUEST_FIELD: Final = "pgbatch_request"
#: Where :func:`verify` leaves the form's request key (``scope["state"]``).
REQUEST_STATE: Final = "form_request"
HEADER: Final = "x-csrf-token"
#: Largest action body read for the token check (forms are small).
MAX_BODY: Final = 1 << 20


def _sign(config: WebConfig, nonce: str) -> str:
    return hmac.new(config.secret, nonce.encode(), hashlib.sha256).hexdigest()


def new_token(config: WebConfig) -> str:
    """A fresh signed token: ``<nonce>.<hmac>``."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_sign(config, nonce)}"


def is_valid(config: WebConfig, token: str | None) -> bool:
    """Whether ``token`` was signed by this server's secret."""
    if not token or "." not in token:
        return False
    nonce, _, mac = token.partition(".")
    return hmac.compare_digest(_sign(config, nonce), mac)


def token_for(request: Request, config: WebConfig) -> str:
    """The request's token: its valid cookie, else a new one (set on the response)."""
    state = request.scope.setdefault("state", {})
    token = state.get("csrf_token")
    if token is None:
        cookie = request.cookies.get(COOKIE)
        token = cookie if is_valid(config, cookie) else new_token(config)
        state["csrf_token"] = token
    return str(token)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise WebError(413, "PayloadTooLarge", f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _form_token(body: bytes, content_type: str, field: str = FIELD) -> str | None:
    if content_type.startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(field)
        return values[0] if values else None
    if content_type.startswith("multipart/form-data"):
        marker = f'name="{field}"'.encode()
        at = body.find(marker)
        if at >= 0:
            start = body.find(b"\r\n\r\n", at)
            end = body.find(b"\r\n", start + 4)
            if start >= 0 and end >= 0:
                return body[start + 4:end].decode("latin-1")
    return None


async def verify(request: Request, config: WebConfig) -> Receive:
    """Check the action's token (``WebError`` 403 ``CsrfRejected`` when it fails).

    Returns a ``receive`` that replays the body, so the endpoint reads it as usual.
    The form's request key (``REQUEST_FIELD``), if any, is left in the request's
    state (``REQUEST_STATE``).
    """
    body = await _read_body(request.receive)
    content_type = request.headers.get("content-type", "")
    submitted = request.headers.get(HEADER) or _form_token(body, content_type)
    cookie = request.cookies.get(COOKIE)
    if not (is_valid(config, cookie) and submitted
            and hmac.compare_digest(str(cookie), submitted)):
        raise WebError(403, "CsrfRejected",
                       "the form's CSRF token is missing or does not match: reload the page "
                       "and try again")
    key = _form_token(body, content_type, REQUEST_FIELD)
    if key:
        request.scope.setdefault("state", {})[REQUEST_STATE] = key
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return replay


class CookieSetter:
    """Sets the token cookie on a response when the request had no valid one."""

    def __init__(self, app: ASGIApp, config: WebConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = scope.get("state", {}).get("csrf_token")
                request = Request(scope)
                if token is not None and request.cookies.get(COOKIE) != token:
                    headers = MutableHeaders(scope=message)
                    path = scope.get("root_path", "") or "/"
                    headers.append("set-cookie", f"{COOKIE}={token}; Path={path}; HttpOnly; "
                                                 "SameSite=Strict")
            await send(message)

        await self.app(scope, receive, send_with_cookie)
