"""What the web server is told: where to connect, who may do what, where to listen.

``WebConfig`` is checked once, by :meth:`WebConfig.check`, before anything
listens: a server bound to anything but a loopback address must have
authentication configured (tokens or basic users), because every page shows
payloads and errors and the admin kind can act on jobs.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Final, Literal

from pgbatch._errors import InvalidArgument

#: The two kinds of credential: ``read`` sees everything and acts on nothing.
Kind = Literal["read", "admin"]
KINDS: Final[tuple[Kind, ...]] = ("read", "admin")
#: Default listen address: loopback only.
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080


@dataclass(frozen=True)
class Credential:
    """One token or basic user.

    ``name`` identifies it in logs and in ``request.state.principal``;
    ``kind`` is ``"read"`` or ``"admin"``; ``secret`` is the bearer token
    (``Authorization: Bearer <secret>``) or, for basic auth, the password of
    user ``name`` (``Authorization: Basic name:secret``). Both forms are
    accepted for every credential.
    """

    name: str
    kind: Kind
    secret: str

    @classmethod
    def parse(cls, text: str) -> Credential:
        """``NAME:KIND:SECRET`` (the secret may contain ``:``), e.g. ``ci:read:s3cr3t``."""
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise InvalidArgument(f"invalid credential {parts[0]!r}...: give NAME:KIND:SECRET "
                                  "with a non-empty name and secret")
        name, kind, secret = parts
        if kind not in KINDS:
            raise InvalidArgument(f"invalid credential kind {kind!r} for {name!r}: must be "
                                  "read or admin")
        return cls(name, kind, secret)


@dataclass(frozen=True)
class WebConfig:
    """Everything ``create_app`` needs.

    - ``dsn``: the database (a login role granted ``pgbatch_admin``; with
      ``read_only``, ``pgbatch_viewer`` is enough). The app refuses to start
      when the role lacks those rights (``pgbatch.web.db.RoleRightsError``).
    - ``credentials``: tokens (each also a basic-auth user); empty means no authentication,
      which only a loopback ``host`` allows.
    - ``read_only``: no action at all, whoever asks (every POST is refused).
    - ``host``, ``port``: where uvicorn listens (checked here, used by the CLI).
    - ``secret``: the key that signs CSRF tokens (random per process by
      default; give a fixed one when several replicas serve one site).
    - ``sample_seconds``: how often the throughput chart samples queue_stats.
    - ``pool_max_size``: connections of the server's pool.
    """

    dsn: str
    credentials: tuple[Credential, ...] = ()
    read_only: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    sample_seconds: float = 10.0
    pool_max_size: int = 8

    @property
    def auth_enabled(self) -> bool:
        """Whether requests must authenticate."""
        return bool(self.credentials)

    def check(self) -> WebConfig:
        """Raise ``InvalidArgument`` for a configuration that must not start; return self."""
        if not is_loopback(self.host) and not self.auth_enabled:
            raise InvalidArgument(
                f"refusing to listen on {self.host}: a non-loopback address needs "
                "authentication: give at least one --token NAME:KIND:SECRET")
        names = [c.name for c in self.credentials]
        if len(set(names)) != len(names):
            raise InvalidArgument("credential names must be unique")
        if not 0 < self.port < 65536:
            raise InvalidArgument(f"invalid port {self.port}: must be 1 to 65535")
        if not self.sample_seconds > 0:
            raise InvalidArgument("sample_seconds must be more than 0")
        return self


def is_loopback(host: str) -> bool:
    """``localhost`` or an address in 127.0.0.0/8 or ``::1``; anything else is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
