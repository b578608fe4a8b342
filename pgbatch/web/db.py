"""The server's one connection pool and the SQL calls it makes.

``lifespan`` opens one ``AsyncConnectionPool`` (through
``AsyncClient.connect``: autocommit connections that follow the process's
watch of the DSN) when the app starts and closes it when it stops. Handlers
reach it with :func:`client`. Every read and action is one SQL API function:
the ``AsyncClient`` methods for what it wraps, and the ``Op`` objects below
for the read functions only the web uses (``web_nodes``, ``metrics``).

Before it serves, ``lifespan`` checks what the connected role may execute
(:func:`rights_problem`): a ``read_only`` server needs the reports (the
viewer group role, ``pgbatch_viewer``, is enough); any other server also
needs the actions (``pgbatch_admin``), and refuses to start without them,
rather than serve buttons that would all fail with a permission error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

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


#: Reports every page reads: a role that may not execute one of them cannot serve the app.
REPORTS: Final = ("queue_stats", "list_jobs", "get_job", "web_nodes", "metrics",
                  "job_executions_page", "get_execution", "approvals", "schedules")
#: Actions the buttons and POST endpoints call: an admin's rights.
ACTIONS: Final = ("requeue_dead_job", "cancel_job", "pause_queue", "resume_execution",
                  "approve_gate", "trigger_schedule")


class RoleRightsError(RuntimeError):
    """The database role may not execute what the server would call (it refuses to start)."""


def rights() -> Op[tuple[str, list[str]]]:
    """The connected role's name, and which of ``REPORTS`` and ``ACTIONS`` it may not execute."""
    return Op(
        "select current_user::text, coalesce(array_agg(p.proname::text order by p.proname)"
        " filter (where not pg_catalog.has_function_privilege(p.oid, 'execute')), '{}')"
        " from pg_catalog.pg_proc p"
        " where p.pronamespace = 'pgbatch'::regnamespace and p.proname = any(%s)",
        ([*REPORTS, *ACTIONS],), lambda rows: (str(rows[0][0]), list(rows[0][1])))


def rights_problem(role: str, denied: list[str], read_only: bool) -> str | None:
    """Why a server (``read_only`` or not) connected as ``role`` must not start, or None."""
    reads = [n for n in denied if n in REPORTS]
    if reads:
        return (f"the database role {role!r} may not execute {', '.join(reads)}: grant it the "
                "viewer group role (pgbatch_viewer by default) for a --read-only server, or "
                "the admin group role (pgbatch_admin) for one that acts")
    acts = [n for n in denied if n in ACTIONS]
    if acts and not read_only:
        return (f"the database role {role!r} may not execute the actions {', '.join(acts)}: "
                "start the server with --read-only (a viewer role's rights are enough then), "
                "or connect as a role granted the admin group role (pgbatch_admin by default)")
    return None


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
    try:
        problem = rights_problem(*await aclient.run(rights()), cfg.read_only)
    except BaseException:
        await aclient.close()
        raise
    if problem is not None:
        await aclient.close()
        raise RoleRightsError(f"pgbatch web: {problem}")
    app.state.client = aclient
    sampler = Sampler(aclient, cfg.sample_seconds)
    app.state.sampler = sampler
    await sampler.start()
    try:
        yield
    finally:
        await sampler.stop()
        await aclient.close()
