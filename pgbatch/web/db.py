"""The server's one connection pool and the SQL calls it makes.

``lifespan`` opens one ``AsyncConnectionPool`` (through
``AsyncClient.connect``: autocommit connections that follow the process's
watch of the DSN) when the app starts and closes it when it stops. Handlers
reach it with :func:`client`. Every read and action is one SQL API function:
the ``AsyncClient`` methods for what it wraps, and the ``Op`` objects below
for the read functions only the web uses (``web_nodes``, ``metrics``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.requests import Request

from pgbatch._aio_client import AsyncClient
from pgbatch._ops import Op
from pgbatch.web.config import WebConfig

Row = dict[str, Any]


def _rows(rows: list[Any]) -> list[Row]:
    return [dict(r) for r in rows]


def nodes() -> Op[list[Row]]:
    """``pgbatch.web_nodes()``: registered worker nodes with heartbeat age and liveness."""
    return Op("select * from pgbatch.web_nodes()", (), _rows, dict_row)


def metrics() -> Op[list[Row]]:
    """``pgbatch.metrics()``: every gauge of ``/metrics`` in one query."""
    return Op("select * from pgbatch.metrics()", (), _rows, dict_row)


def client(request: Request) -> AsyncClient:
    """The app's client (its pool opened by ``lifespan``)."""
    return request.app.state.client  # type: ignore[no-any-return]


def config(request: Request) -> WebConfig:
    """The app's configuration."""
    return request.app.state.config  # type: ignore[no-any-return]


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the pool (and start the throughput sampler); close both on shutdown."""
    from pgbatch.web.throughput import Sampler  # noqa: PLC0415

    cfg: WebConfig = app.state.config
    aclient = await AsyncClient.connect(cfg.dsn, min_size=1, max_size=cfg.pool_max_size)
    app.state.client = aclient
    sampler = Sampler(aclient, cfg.sample_seconds)
    app.state.sampler = sampler
    await sampler.start()
    try:
        yield
    finally:
        await sampler.stop()
        await aclient.close()
