"""Who is asking, and whether they may act: the authentication middleware.

Every request except ``/static/`` is authenticated when the configuration
has credentials: ``Authorization: Bearer <secret>`` (API clients) or
``Authorization: Basic`` with a credential's name and secret (browsers get
the basic-auth prompt on a 401). Without credentials (loopback only, see
``WebConfig.check``) everyone is the ``anonymous`` admin.

Every request that is not GET/HEAD/OPTIONS is an action: it needs the admin
kind, and a server started ``read_only`` refuses it for everyone (403
``ReadOnly``). Actions are then checked for CSRF (:mod:`pgbatch.web.csrf`),
except those authenticated by a bearer token, which a browser never sends on
its own. The principal is ``request.state.principal``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from pgbatch.web import csrf
from pgbatch.web.config import Credential, Kind, WebConfig
from pgbatch.web.errors import WebError, handle_error

#: Methods that never change anything.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: The realm of the basic-auth prompt.
REALM: Final = "pgbatch"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a credential's ``name`` and ``kind``; ``bearer`` when a
    bearer token said so (such requests are exempt from CSRF checks)."""

    name: str
    kind: Kind
    bearer: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether this caller may act (POST)."""
        return self.kind == "admin"


def _match(credentials: tuple[Credential, ...], name: str | None, secret: str) -> Credential | None:
    found = None
    for cred in credentials:  # compare against every one: no early exit on a match
        ok = hmac.compare_digest(cred.secret.encode(), secret.encode())
        if ok and (name is None or hmac.compare_digest(cred.name.encode(), name.encode())):
            found = cred
    return found


def authenticate(request: Request, config: WebConfig) -> Principal:
    """The caller of ``request``, or ``WebError`` 401 (with the basic-auth challenge)."""
    if not config.auth_enabled:
        return Principal("anonymous", "read" if config.read_only else "admin")
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    cred: Credential | None = None
    bearer = scheme.lower() == "bearer"
    if bearer and value.strip():
        cred = _match(config.credentials, None, value.strip())
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
            name, sep, secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, sep, secret = "", "", ""
        if sep:
            cred = _match(config.credentials, name, secret)
    if cred is None:
        raise WebError(401, "Unauthorized",
                       "authentication required: a bearer token or basic credentials"
                       if not header else "invalid credentials",
                       headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
    kind: Kind = "read" if config.read_only else cred.kind
    return Principal(cred.name, kind, bearer=bearer)


def authorize_action(principal: Principal, config: WebConfig) -> None:
    """``WebError`` 403 unless ``principal`` may act."""
    if config.read_only:
        raise WebError(403, "ReadOnly", "this server runs read-only: no action is allowed")
    if not principal.is_admin:
        raise WebError(403, "ReadOnly",
                       f"credential {principal.name!r} is read-only: actions need an admin one")


class SecurityMiddleware:
    """ASGI middleware: authentication, the admin check and CSRF for every action."""

    def __init__(self, app: ASGIApp, config: WebConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        path = scope["path"][len(scope.get("root_path", "")):] \
            if scope["path"].startswith(scope.get("root_path", "")) else scope["path"]
        if path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        try:
            principal = authenticate(request, self.config)
            scope.setdefault("state", {})["principal"] = principal
            if scope["method"] not in SAFE_METHODS:
                authorize_action(principal, self.config)
                if not principal.bearer:
                    receive = await csrf.verify(request, self.config)
        except WebError as exc:
            response = await handle_error(request, exc)
            await response(scope, receive, send)
            return
        await csrf.CookieSetter(self.app, self.config)(scope, receive, send)
