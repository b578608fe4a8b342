"""The chunk loop of a step run in the server (:mod:`pgbatch.batch.pushdown`), inside
the database: ``pgbatch.run_server_chunks``.

One ``CALL`` runs chunk after chunk for up to :data:`STRETCH_SECONDS`: each chunk
is the same statement as the worker would send (the page insert after the
cursor, the new context, ``commit_chunk``: checkpoint, counters, fence, lease,
stop and pause read-back) and its own durable COMMIT, so what is committed when
is exactly what the chunk loop in the worker commits; only the round trips, the
planning of each statement and the worker's own work per chunk are gone. The
call returns after the chunk that reads back a stop or pause request, at the
end of the input, or when its time is up; the chunk loop then makes its usual
checks (an operator's stop or pause, the worker's shutdown, the claim) and
calls again. A worker's shutdown is therefore seen within about a second.

A lost connection during the call (the server restarted, the backend was
terminated, the network broke): some chunks may have committed, the one in
progress did not. The worker makes sure the backend that ran the call is gone
(it terminates it if it still runs the call; a backend whose client is gone
ends by itself within 250 ms: the worker sets ``client_connection_check_interval``
on each connection before its first call), then reads
the step's committed checkpoint back (``start_step`` in a transaction rolled
back, fenced like every call of the claim) and continues from it: nothing is
retried blindly, and a lost claim is ``ClaimLost``.

On a database not yet migrated to 0028_server_chunks (no procedure) the
worker says so once per step and sends the chunks itself. Not taken while a
fault hook is installed (:mod:`pgbatch.batch.faults`: the
points between chunks are in the worker), nor when the executor is built with
``server_loop=False``: the worker then sends each chunk itself (pipelined,
:mod:`pgbatch.batch.pipeline`, or one statement per chunk).
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int8

from pgbatch._errors import InvalidArgument, translate
from pgbatch.batch import faults
from pgbatch.batch.calls import call_row
from pgbatch.batch.items import ExecutionContext
from pgbatch.batch.pushdown import Expr, Params, ServerChunk, null_key_error

if TYPE_CHECKING:
    from pgbatch.batch.chunks import ChunkRun

log = logging.getLogger("pgbatch.batch")

#: Seconds of chunks one call runs before the worker checks its own shutdown and claim.
STRETCH_SECONDS: Final = 1.0
CALL: Final = "call pgbatch.run_server_chunks(%s, %s, %s::jsonb, %s::bigint, %s)"
#: While a call runs, its backend checks every 250 ms that its client is still there.
CHECK_CLIENT: Final = "set client_connection_check_interval = 250"
#: The connections that were given CHECK_CLIENT (a session setting).
_CHECKED: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
#: Ends the backend that ran a call whose connection was lost, if it still runs it.
_END_OLD_CALL: Final = (
    "select pg_catalog.pg_terminate_backend(a.pid, 5000) from pg_catalog.pg_stat_activity a"
    " where a.pid = %s and a.query like 'call pgbatch.run_server_chunks(%%'")


class _Inlined(Params):
    """No placeholders: the statements of :func:`loop_statements` write constants as
    literals, per-chunk values as expressions (:class:`~pgbatch.batch.pushdown.Expr`),
    and the reader's query with its parameters bound by the client."""

    def __init__(self, query: str) -> None:
        super().__init__(None, sql.SQL(query))

    def add(self, value: Any) -> sql.Composable:
        return value.sql if isinstance(value, Expr) else sql.Literal(value)


@dataclass(frozen=True)
class LoopStatements:
    """The statements ``pgbatch.run_server_chunks`` runs: the first chunk of a step with
    no cursor yet, and every other chunk."""

    first: str
    next: str


def loop_statements(server: ServerChunk, conn: psycopg.Connection[Any],
                    commit_args: list[Any]) -> LoopStatements:
    """The statements of the chunk loop in the database: the same statements as
    :meth:`ServerChunk.statement`'s, with ``commit_chunk``, whose per-chunk values are
    read from their parameters ($1 the committed context, $2 the expected sequence
    number) and whose constants (the reader's parameters, bound by the client, and
    ``commit_args`` but the sequence number) are literals. Built once per claim (the
    commit arguments change with it)."""
    se, job, token, _, lease = commit_args
    key = (se, job, token, lease, server.total)
    if server.loop is not None and server.loop[0] == key:
        return cast(LoopStatements, server.loop[1])
    reader = server.reader
    params = reader.params if reader.params is not None else []
    query = psycopg.ClientCursor(conn).mogrify(reader.query.as_string(conn), params)
    name = sql.Literal(reader.name)
    after = [Expr(sql.SQL("($1 -> {} -> 'after' -> {} ->> 'v')").format(name, sql.Literal(i)))
             for i in range(len(reader.keys))]
    read0 = Expr(sql.SQL("coalesce(($1 -> {} ->> 'read')::bigint, 0)").format(name))
    args = [se, job, token, Expr(sql.SQL("$2")), lease]
    texts = [server.compose(cursor, read0, Expr(sql.SQL("$1")), args,
                            _Inlined(query))[0].as_string(conn)
             for cursor in (None, after)]
    loop = LoopStatements(texts[0], texts[1])
    server.loop = (key, loop)
    return loop


def loop_in_server(run: ChunkRun, server: ServerChunk) -> bool | None:
    """One call of the loop in the database: the stop read-back of the last chunk it
    committed (False when none), or None at the end of the input."""
    x, item = run.sctx, run.ctx.job
    deadline = time.monotonic() + run.outage
    pid: int | None = None
    try:
        with run._claim_connection() as conn:
            pid = conn.info.backend_pid
            if conn not in _CHECKED:  # armed when a command starts: before the first call
                conn.execute(CHECK_CLIENT)
                _CHECKED.add(conn)
            texts = loop_statements(server, conn, [run.step_execution_id, item.id,
                                                   item.claim_token, run.seq, run.lease])
            first = texts.first if server.reader._cursor_of(run.committed) is None else None
            try:
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(CALL, [first, texts.next, Jsonb(run.committed), Int8(run.seq),
                                       STRETCH_SECONDS], prepare=False)
                    row = cur.fetchone()
            except psycopg.errors.UndefinedFunction as exc:
                if "run_server_chunks" not in str(exc):
                    raise
                # a schema before 0028_server_chunks: nothing ran; the worker sends the chunks
                log.warning("step %s (execution %s): the database has no"
                            " pgbatch.run_server_chunks (migrate it: pgbatch migrate); the"
                            " worker sends each chunk", x.step_name, x.execution_id)
                run.server_loop = False
                return False
            except psycopg.Error as exc:
                mine = translate(exc)
                if isinstance(mine, InvalidArgument) and server.returned_keys is not None \
                        and "counters" in str(mine):
                    raise null_key_error(server) from exc  # a NULL key (see ServerChunk)
                if mine is not None:
                    raise mine from exc
                raise
    except psycopg.OperationalError as exc:
        log.warning("step %s (execution %s), chunk loop in the server: connection lost (%s);"
                    " reading its checkpoint back", x.step_name, x.execution_id, exc)
        seq, context = committed_checkpoint(run, pid, deadline)
        run.seq, run.committed = seq, context
        return False
    assert row is not None
    run.seq, run.committed = int(row["chunk_seq"]), dict(row["context"])
    run.pause_read_back = bool(row["pause_requested"])
    if row["outcome"] == "null_keys":
        raise null_key_error(server)
    if row["outcome"] == "end":
        return None
    return bool(row["stop_requested"])


def committed_checkpoint(run: ChunkRun, pid: int | None,
                         deadline: float) -> tuple[int, ExecutionContext]:
    """The step's committed chunk count and context, once the backend of a lost call
    (``pid``) is gone; asked until ``deadline`` while the database is away."""
    services = run.ctx.services
    assert services is not None
    x = run.sctx
    delay = 0.1
    while True:
        try:
            with services.sync_client().pool.connection() as conn:
                if pid is not None:
                    conn.execute(_END_OLD_CALL, [pid])
                with conn.transaction(force_rollback=True):
                    started = call_row(conn, "select * from pgbatch.start_step(%s, %s, %s, %s)",
                                       [x.execution_id, x.step_name, run.ctx.job.id,
                                        run.ctx.job.claim_token])
            if started["step_execution_id"] != run.step_execution_id:
                raise RuntimeError(f"step {x.step_name!r} of execution {x.execution_id}: the"
                                   f" committed checkpoint cannot be read ({started!r})")
            return int(started["chunk_seq"]), dict(started["context"] or {})
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            run.sleep(delay)
            delay = min(delay * 2, 2.0)


def takes_server_loop(run: ChunkRun) -> bool:
    """Whether the step's chunks run in the database's loop (see the module)."""
    return run.server_loop and run.ctx.services is not None and not faults.installed()
