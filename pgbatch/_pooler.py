"""Connection pooler mode: what pgbatch's connections may use behind PgBouncer.

A transaction pooler (PgBouncer ``pool_mode = transaction``) hands each
transaction to whichever server connection is free, so nothing that outlives
a transaction survives on a client connection: server-side prepared
statements (psycopg prepares a query after five executions; PgBouncer 1.18
cannot track them), session settings, session advisory locks and LISTEN.

``pooler="transaction"`` (``App(pooler=...)``, ``Client.connect(pooler=...)``,
``pgbatch <command> --pooler transaction`` or ``$PGBATCH_POOLER``) makes every
connection pgbatch opens prepare nothing (``prepare_threshold=None``). pgbatch
keeps no session state on any connection in either mode (leadership is a
lease row, settings are transaction-local), and in pooler mode a worker does
not LISTEN through the pooler: it polls, or LISTENs on ``listen_dsn``
(``$PGBATCH_LISTEN_DSN``), a direct connection to the server.

There is no DSN-level switch: libpq refuses connection strings with unknown
keywords (``invalid connection option``), and PgBouncer 1.18 refuses the
``options`` startup parameter a ``-c pgbatch.pooler=...`` would need.
"""

from __future__ import annotations

import os
from typing import Any, Final, Literal, TypeAlias

from pgbatch._errors import InvalidArgument

#: The environment variable that selects the pooler mode when none is given.
POOLER_ENV: Final = "PGBATCH_POOLER"
#: The environment variable naming a direct DSN for the worker's LISTEN connection.
LISTEN_DSN_ENV: Final = "PGBATCH_LISTEN_DSN"

#: ``"none"``: direct connections (or a session pooler); ``"transaction"``: a
#: transaction pooler such as PgBouncer in ``pool_mode = transaction``.
PoolerMode: TypeAlias = Literal["none", "transaction"]
POOLER_MODES: Final[tuple[PoolerMode, ...]] = ("none", "transaction")


def resolve_pooler(pooler: str | None = None) -> PoolerMode:
    """``pooler`` when given, else ``$PGBATCH_POOLER``, else ``"none"``; checked."""
    value = pooler if pooler is not None else os.environ.get(POOLER_ENV) or "none"
    if value not in POOLER_MODES:
        source = "pooler" if pooler is not None else f"${POOLER_ENV}"
        raise InvalidArgument(
            f"{source} must be one of {', '.join(POOLER_MODES)}, got {value!r}")
    return value


def resolve_listen_dsn(listen_dsn: str | None = None) -> str | None:
    """``listen_dsn`` when given, else ``$PGBATCH_LISTEN_DSN``, else None."""
    return listen_dsn or os.environ.get(LISTEN_DSN_ENV) or None


def connection_kwargs(pooler: PoolerMode) -> dict[str, Any]:
    """psycopg connection arguments for pgbatch's (autocommit) connections in ``pooler`` mode."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if pooler == "transaction":
        kwargs["prepare_threshold"] = None
    return kwargs
