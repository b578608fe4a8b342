"""The chunk loop of a chunk step (BATCH.md §4.2).

Per chunk: read up to ``chunk_size`` items (fewer when the step's logic asks
to stop or pause), process them (``None`` filters an item out), then one
fenced transaction: the writer's writes, ``update(context)`` of reader and
writer and ``commit_chunk`` (checkpoint, counters, lease, stop and pause
read-back; it fences itself: the claim's row stays locked until COMMIT), so it
costs BEGIN, the writer's statements, ``commit_chunk`` and COMMIT. A writer
that offers its
chunk as one statement (``chunk_statement``, e.g. ``TableWriter(method=
"unnest")``) has it run as a data-modifying ``WITH`` of the ``commit_chunk``
call: one autocommit statement (a step run in the server, pushdown.py, pipelines
its commits on two connections: pipeline.py). After the commit: an operator's stop or
``request_stop()`` ends the step STOPPED, an operator's pause parks it
(:mod:`pgbatch.batch.pausing`; ``request_pause()`` commits the chunk and the
pause in one transaction), the worker's shutdown hands it off (or stops or
pauses it, per ``on_shutdown``), the end of the input completes it.

An ambiguous commit (the connection was lost during the transaction) is
resolved by asking the database, never by a blind retry: a rolled-back
transaction that calls ``commit_chunk`` for the same sequence number tells
whether the chunk committed (``applied = false``: go on) or not (the same
items, kept in memory, are written and committed again), retried with
backoff until ``outage`` seconds have passed (then the attempt fails and the
execution is recovered).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgbatch._errors import ClaimLost, InvalidArgument, JobNotFound
from pgbatch.batch import faults
from pgbatch.batch.calls import call_row
from pgbatch.batch.context import StepContext
from pgbatch.batch.definition import ChunkStep
from pgbatch.batch.faults import fault_point
from pgbatch.batch.items import ExecutionContext
from pgbatch.batch.pausing import commit_and_park
from pgbatch.batch.pipeline import run_in_server
from pgbatch.batch.pushdown import ServerChunk, null_key_error, server_plan
from pgbatch.batch.streams import make_reader, make_writer
from pgbatch.worker.context import JobContext

log = logging.getLogger("pgbatch.batch")

#: How a chunk step run ended.
ChunkOutcome = Literal["COMPLETED", "STOPPED", "HANDOFF", "SHUTDOWN_STOP", "PAUSED",
                       "PAUSE_OPERATOR", "PAUSE_SHUTDOWN"]
_ON_SHUTDOWN: dict[str, ChunkOutcome] = {"handoff": "HANDOFF", "pause": "PAUSE_SHUTDOWN"}

_COMMIT = ("select * from pgbatch.commit_chunk(%s, %s, %s, %s, %s, read_count => %s,"
           " write_count => %s, filter_count => %s, lease => %s)")
_WITH_WRITE = sql.SQL("with _pgbatch_write as ({}) " + _COMMIT)


class _Rollback(Exception):
    """Rolls the probing transaction back."""


def _call(obj: object, name: str, *args: Any) -> None:
    fn = getattr(obj, name, None)
    if callable(fn):
        fn(*args)


@dataclass
class _Chunk:
    items: list[Any]
    read: int
    filtered: int
    end: bool


class ChunkRun:
    """One run of a chunk step inside one claim."""

    def __init__(self, ctx: JobContext, step: ChunkStep, sctx: StepContext, start: dict[str, Any],
                 lease: timedelta, on_shutdown: str, outage: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, *, pipeline: bool = True,
                 server_loop: bool = True) -> None:
        self.ctx = ctx
        self.step = step
        self.sctx = sctx
        self.step_execution_id = int(start["step_execution_id"])
        self.committed: ExecutionContext = dict(start["context"] or {})
        self.seq = int(start["chunk_seq"])
        self.lease = lease
        self.on_shutdown = on_shutdown
        self.outage = outage
        self.sleep = sleep
        self.reader: Any = None
        self.writer: Any = None
        self.read_in_run = 0
        self._folded: tuple[sql.Composable, str] | None = None  # a writer's statement, as SQL
        self.server: ServerChunk | None = None  # the step runs in the server (pushdown.py)
        self.pause_read_back = False  # an operator's pause, read back at the last commit
        self.parked: dict[str, Any] | None = None  # park_execution's row (request_pause)
        #: whether the step run in the server pipelines its commits (None: not decided yet)
        self.pipeline: bool | None = None if pipeline else False
        #: whether the step run in the server runs its chunk loop in the database
        #: (:mod:`pgbatch.batch.server_loop`)
        self.server_loop = server_loop

    # -- streams ----------------------------------------------------------------------
    def _open(self) -> None:
        self.reader = make_reader(self.step.reader)
        self.writer = make_writer(self.step.writer)
        self.server = self._server_plan()
        if self.server is not None:
            return  # nothing to open: no row passes through this process
        _call(self.reader, "open", dict(self.committed))
        _call(self.writer, "open", dict(self.committed))

    def _close(self) -> None:
        for part in (self.reader, self.writer):
            if part is not None:
                try:
                    _call(part, "close")
                except Exception:
                    log.exception("close() of %r failed", part)

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> ChunkOutcome:
        """Run chunks until the input ends or a stop or shutdown is seen."""
        self._open()
        try:
            while True:
                if self.server is not None:
                    stop_read_back: bool | None = run_in_server(self, self.server)
                    if stop_read_back is None:
                        return "COMPLETED"
                else:
                    chunk = self._read_chunk()
                    if self.sctx.pause_asked is not None:
                        self.parked = commit_and_park(self, chunk)
                        return "PAUSED"
                    if chunk.read == 0 and chunk.end:
                        return "COMPLETED"
                    stop_read_back = self._commit(chunk)
                    if chunk.end:
                        return "COMPLETED"
                if stop_read_back:
                    self.sctx.operator_stop_seen()
                    return "STOPPED"
                if self.sctx.stop_asked:
                    return "STOPPED"
                if self.pause_read_back:
                    return "PAUSE_OPERATOR"
                if self.ctx.stop_requested.is_set():
                    return _ON_SHUTDOWN.get(self.on_shutdown, "SHUTDOWN_STOP")
        finally:
            self._close()

    def _read_chunk(self) -> _Chunk:
        items: list[Any] = []
        read = filtered = 0
        end = False
        x = self.sctx
        size = self.step.chunk_size
        read_item = self.reader.read
        process = self.step.processor
        append = items.append
        hooked = faults.installed()
        while read < size:
            item = read_item()
            if item is None:
                end = True
                break
            read += 1
            if hooked:
                fault_point("after_read", execution_id=x.execution_id, step=x.step_name,
                            k=self.read_in_run + read, item=item)
            out = process(item) if process is not None else item
            if out is None:
                filtered += 1
            else:
                append(out)
            if x.stop_asked or x.pause_asked is not None:
                break
        self.read_in_run += read
        return _Chunk(items, read, filtered, end)

    def _context_after(self) -> ExecutionContext:
        context = dict(self.committed)
        _call(self.reader, "update", context)
        _call(self.writer, "update", context)
        return context

    def _args(self, chunk: _Chunk, context: ExecutionContext) -> list[Any]:
        item = self.ctx.job
        return [self.step_execution_id, item.id, item.claim_token, self.seq, Jsonb(context),
                chunk.read, len(chunk.items), chunk.filtered, self.lease]

    def _commit(self, chunk: _Chunk) -> bool:
        """Write and commit ``chunk``; return the stop read-back."""
        context = self._context_after()
        x = self.sctx
        deadline = time.monotonic() + self.outage
        delay = 0.1
        while True:
            try:
                row = self._write_and_commit(chunk, context)
                break
            except ClaimLost:
                raise
            except psycopg.OperationalError as exc:
                log.warning("chunk %d of step %s (execution %s): connection lost (%s); "
                            "checking whether it committed", self.seq, x.step_name,
                            x.execution_id, exc)
                committed: dict[str, Any] | None = None
                while committed is None:
                    try:
                        committed = self._probe(chunk, context)
                    except ClaimLost:
                        raise
                    except psycopg.OperationalError:
                        if time.monotonic() > deadline:
                            raise
                        self.sleep(delay)
                        delay = min(delay * 2, 2.0)
                if not committed["applied"]:
                    row = committed
                    break
                # not committed: write the same items again, with a writer opened afresh
                # (its own connections may have died with the server)
                if time.monotonic() > deadline:
                    raise
                _call(self.writer, "close")
                self.writer = make_writer(self.step.writer)
                _call(self.writer, "open", dict(self.committed))
                self.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.seq, self.committed = int(row["chunk_seq"]), context
        self.pause_read_back = bool(row["pause_requested"])
        fault_point("after_commit_before_ack", execution_id=x.execution_id, step=x.step_name,
                    seq=self.seq)
        return bool(row["stop_requested"])

    @contextlib.contextmanager
    def _claim_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the worker for one chunk; the claim is lost if its fence fails.

        The block fences itself (``commit_chunk`` fences as ``fence_claim`` does); a
        clean exit extends the claim's lease keeper like ``fenced_sync``.
        """
        ctx = self.ctx
        claim, services = ctx.claim, ctx.services
        if claim is None or services is None:
            raise RuntimeError("a chunk step runs in a job run by a worker")
        if ctx.settled or ctx.claim_lost.is_set():
            raise ClaimLost(f"claim of job {ctx.job.id} is lost or already settled")
        with services.sync_client().pool.connection() as conn:
            try:
                yield conn
            except JobNotFound as exc:
                ctx.claim_lost.set()
                raise ClaimLost(exc.args[0] if exc.args else "") from exc
            except ClaimLost:
                ctx.claim_lost.set()
                raise
        claim.extended()

    def _write_and_commit(self, chunk: _Chunk, context: ExecutionContext) -> dict[str, Any]:
        x = self.sctx
        statement = getattr(self.writer, "chunk_statement", None)
        with self._claim_connection() as conn:
            folded = statement(conn, chunk.items) if callable(statement) and chunk.items \
                else None
            if folded is not None:
                # one autocommit statement: the write, the checkpoint and the fence
                fault_point("after_write_before_commit", execution_id=x.execution_id,
                            step=x.step_name, seq=self.seq)
                query, params = folded
                if self._folded is None or self._folded[0] is not query:
                    self._folded = (query, _WITH_WRITE.format(query).as_string(conn))
                return call_row(conn, self._folded[1], [*params, *self._args(chunk, context)])
            with conn.transaction():
                if chunk.items:
                    self.writer.write(conn, chunk.items)
                fault_point("after_write_before_commit", execution_id=x.execution_id,
                            step=x.step_name, seq=self.seq)
                return call_row(conn, _COMMIT, self._args(chunk, context))

    def _probe(self, chunk: _Chunk, context: ExecutionContext) -> dict[str, Any]:
        """Whether chunk ``seq`` committed: ``applied`` False means it did (the row
        of that earlier commit's read-back); True means it did not (rolled back)."""
        found: dict[str, Any] = {}
        services = self.ctx.services
        assert services is not None
        with services.sync_client().pool.connection() as conn:
            try:
                with conn.transaction():
                    found.update(call_row(conn, _COMMIT, self._args(chunk, context)))
                    raise _Rollback
            except _Rollback:
                pass
        return found

    # -- the step in the server (pushdown.py) ----------------------------------------------
    def _server_plan(self) -> ServerChunk | None:
        """The plan of the chunk statement when the step may run in the server, else None."""
        services = self.ctx.services
        if services is None:
            return None
        return server_plan(services.sync_client().pool, self.reader, self.writer,
                           self.step.processor, self.step.chunk_size, self.committed)

    def _commit_in_server(self, server: ServerChunk) -> bool | None:
        """Run one chunk as one statement; the stop read-back, or None at the end of input."""
        x = self.sctx
        item = self.ctx.job
        deadline = time.monotonic() + self.outage
        delay = 0.1
        while True:
            try:
                with self._claim_connection() as conn:
                    fault_point("after_write_before_commit", execution_id=x.execution_id,
                                step=x.step_name, seq=self.seq)
                    query, params = server.statement(
                        conn, self.committed,
                        [self.step_execution_id, item.id, item.claim_token, self.seq, self.lease])
                    try:
                        done = ServerChunk.result(call_row(conn, query, params))
                    except InvalidArgument as exc:  # a NULL key (see ServerChunk), or not
                        if server.returned_keys is None or "counters" not in str(exc):
                            raise
                        raise null_key_error(server) from exc
                if done.null_keys:
                    raise null_key_error(server)
                if done.read == 0:
                    return None
                assert done.commit is not None
                row, context = done.commit, done.context
                break
            except ClaimLost:
                raise
            except psycopg.OperationalError as exc:
                log.warning("chunk %d of step %s (execution %s), run in the server: connection "
                            "lost (%s); checking whether it committed", self.seq, x.step_name,
                            x.execution_id, exc)
                found, committed = self._probe_until(deadline)
                if committed is not None:  # it committed: take its checkpoint from the database
                    row, context = found, committed
                    break
                if time.monotonic() > deadline:
                    raise
                self.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.seq, self.committed = int(row["chunk_seq"]), context
        self.pause_read_back = bool(row.get("pause_requested"))
        fault_point("after_commit_before_ack", execution_id=x.execution_id, step=x.step_name,
                    seq=self.seq)
        return bool(row["stop_requested"])

    def _probe_until(self, deadline: float) -> tuple[dict[str, Any], ExecutionContext | None]:
        """Whether chunk ``seq`` committed, asked until ``deadline`` while the database is away.

        One transaction, rolled back: ``commit_chunk`` for the same sequence
        number (``applied = false``: the chunk committed), then, if it did,
        ``start_step`` (it resumes this STARTED step and returns its committed
        checkpoint). Returns commit_chunk's row and that checkpoint, or None
        when the chunk did not commit.
        """
        services = self.ctx.services
        assert services is not None
        x = self.sctx
        delay = 0.1
        while True:
            found: dict[str, Any] = {}
            context: ExecutionContext | None = None
            try:
                with services.sync_client().pool.connection() as conn:
                    try:
                        with conn.transaction():
                            found.update(call_row(conn, _COMMIT, self._args(
                                _Chunk([], 0, 0, False), self.committed)))
                            if not found["applied"]:
                                started = call_row(
                                    conn, "select * from pgbatch.start_step(%s, %s, %s, %s)",
                                    [x.execution_id, x.step_name, self.ctx.job.id,
                                     self.ctx.job.claim_token])
                                if started["step_execution_id"] != self.step_execution_id or \
                                        int(started["chunk_seq"]) != int(found["chunk_seq"]):
                                    raise RuntimeError(
                                        f"step {x.step_name!r} of execution {x.execution_id}: the"
                                        f" committed checkpoint cannot be read ({started!r})")
                                context = dict(started["context"] or {})
                            raise _Rollback
                    except _Rollback:
                        pass
                return found, context
            except ClaimLost:
                raise
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                self.sleep(delay)
                delay = min(delay * 2, 2.0)
