"""Pipelined chunk commits of a step run in the server (:mod:`pgbatch.batch.pushdown`).

A chunk of such a step is the page insert (the next ``chunk_size`` rows after
the cursor inserted into the writer's table, the counts and the new context
returned), ``commit_chunk`` (fence, checkpoint, counters, lease, stop and
pause read-back) and COMMIT, whose WAL flush is durable
(``synchronous_commit`` stays on). Run one after the other, the flush and
``commit_chunk`` of chunk N are serial with the insert of chunk N+1. Here two
connections of the worker's sync pool take the chunks in turn, each in an
explicit transaction:

1. on connection X: the page insert of chunk N (the new cursor comes back);
2. ``commit_chunk`` of N then COMMIT, on X, sent by the pipeline's committer
   thread; meanwhile, on connection Y, the page insert of chunk N+1 after N's
   new cursor (its own open transaction);
3. once COMMIT of N is acknowledged: the stop, pause and shutdown checks of
   the chunk loop; if one says stop, N+1's open transaction is rolled back
   (nothing of it is written); else ``commit_chunk`` of N+1 and its COMMIT go
   to the committer on Y while the page insert of N+2 runs on X.

At most one commit is in flight, ``commit_chunk`` of N+1 is sent only after
COMMIT of N succeeded (and its sequence check fences the order anyway), and
the rows of N+1 are in N+1's transaction: exactly-once holds as in the chunk
loop. The end of the input (a page of 0 rows) is rolled back: it commits
nothing. The insert of N+1 runs before N commits, so its snapshot does not
see N's rows: a step whose reader's query reads the writer's table runs
unpipelined (:func:`reads_its_target`).

A lost connection: when COMMIT (or ``commit_chunk``) of N was in flight its
outcome is asked of the database (``ChunkRun._probe_until``, never a blind
retry); the open transaction of N+1 is rolled back in every case, and the run
continues from what the database says (a chunk that did not commit is redone
by the unpipelined path, with its retries and backoff, then the pipeline
starts again). ``ClaimLost`` and the fence are those of ``commit_chunk``.
Fault points keep their meaning: ``after_write_before_commit`` (``seq``) once
the page insert of chunk ``seq`` returned, its transaction open (the empty
last page included); ``after_commit_before_ack`` (``seq``: the new count)
once COMMIT of a chunk was acknowledged.

What the step holds: two connections of the worker's sync pool for the run of
the step (the pool has one more than the worker's concurrency, so one step at
a time can pipeline) and one thread; when the pool cannot give the second
connection at once the step runs unpipelined, one statement per chunk.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int8
from psycopg_pool import PoolTimeout

from pgbatch._errors import ClaimLost, JobNotFound, translate
from pgbatch.batch.faults import fault_point
from pgbatch.batch.items import ExecutionContext
from pgbatch.batch.pushdown import ServerChunk, ServerChunkResult, null_key_error
from pgbatch.batch.server_loop import loop_in_server, takes_server_loop

if TYPE_CHECKING:
    from pgbatch.batch.chunks import ChunkRun

log = logging.getLogger("pgbatch.batch")

Conn = psycopg.Connection[Any]

#: commit_chunk of a pipelined chunk, its parameters typed (one prepared statement).
COMMIT_CHUNK: Final = (
    "select * from pgbatch.commit_chunk(%s::bigint, %s::uuid, %s::uuid, %s::bigint, %s::jsonb,"
    " read_count => %s::bigint, write_count => %s::bigint, lease => %s::interval)")
#: Seconds to wait for the second connection when the pool has room to open it.
SPARE_TIMEOUT: Final = 5.0


def spare_connection(pool: Any) -> Conn | None:
    """A second connection of ``pool`` if it can give one at once (an idle one, or a
    new one when it has room to open it), else None."""
    stats = pool.get_stats()
    if stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) >= pool.max_size:
        return None
    try:
        conn: Conn = pool.getconn(timeout=SPARE_TIMEOUT)
    except (PoolTimeout, psycopg.OperationalError):
        return None
    return conn


def reads_its_target(conn: Conn, server: ServerChunk) -> bool:
    """Whether the reader's query reads the writer's table (from its plan)."""
    plan = sql.SQL("explain (verbose, format json) select * from ({}) as _pgbatch_q").format(
        server.reader.query)
    with conn.transaction():
        row = conn.execute(plan, server.reader.params).fetchone()
        target = conn.execute("select n.nspname, c.relname from pg_catalog.pg_class c join"
                              " pg_catalog.pg_namespace n on n.oid = c.relnamespace"
                              " where c.oid = pg_catalog.to_regclass(%s)",
                              [server.writer._target.as_string(conn)]).fetchone()
    found: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Relation Name" in node:
                found.add((str(node.get("Schema")), str(node["Relation Name"])))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(row[0] if row else None)
    return target is not None and (str(target[0]), str(target[1])) in found


def run_in_server(run: ChunkRun, server: ServerChunk) -> bool | None:
    """The chunks of a step run in the server: in the database's own loop
    (:mod:`pgbatch.batch.server_loop`) unless the executor says not to; else
    pipelined while the pool gives a second connection, else one statement per
    chunk (``ChunkRun._commit_in_server``).

    Returns the stop read-back of the last chunk committed, or None at the end of
    the input; the chunk loop checks stop, pause and shutdown after it.
    """
    if takes_server_loop(run):
        return loop_in_server(run, server)
    services = run.ctx.services
    if run.pipeline is not False and services is not None:
        pool = services.sync_client().pool
        try:
            conn = pool.getconn()
        except (psycopg.OperationalError, PoolTimeout):  # the database is away
            return run._commit_in_server(server)  # the chunk with its retries and backoff
        spare = spare_connection(pool)
        if spare is not None and run.pipeline is None:
            try:
                run.pipeline = not reads_its_target(conn, server)
            except psycopg.Error as exc:  # not worth failing the step for
                log.info("the plan of reader %r cannot be read (%s)", server.reader.name, exc)
                run.pipeline = False
        if spare is not None and run.pipeline:
            return ChunkPipeline(run, server, pool, [conn, spare]).run()
        if spare is not None:
            pool.putconn(spare)
        pool.putconn(conn)
        log.info("step %s (execution %s): chunks committed one by one (%s)",
                 run.sctx.step_name, run.sctx.execution_id,
                 "no second connection in the pool" if spare is None
                 else "the reader's query may read the writer's table")
        run.pipeline = False
    return run._commit_in_server(server)


class ChunkPipeline:
    """One pipelined stretch of a step run in the server, on two connections."""

    def __init__(self, run: ChunkRun, server: ServerChunk, pool: Any,
                 conns: list[Conn]) -> None:
        self.chunk_run = run
        self.server = server
        self.pool = pool
        self.conns = conns
        self.in_flight = False  # commit_chunk + COMMIT of chunk run.seq sent, not acknowledged
        self.last: dict[str, Any] | None = None  # commit_chunk's row of the last commit here

    def run(self) -> bool | None:
        """Chunks until the input ends or a check says stop (the last chunk's stop
        read-back, None at the end); a lost connection is resolved as the module says."""
        run, x = self.chunk_run, self.chunk_run.sctx
        committer = ThreadPoolExecutor(1, thread_name_prefix="pgbatch-chunk-commit")
        try:
            try:
                return self._loop(committer)
            finally:
                committer.shutdown(wait=True)
                for conn in self.conns:
                    self._release(conn)
        except JobNotFound as exc:
            run.ctx.claim_lost.set()
            raise ClaimLost(exc.args[0] if exc.args else "") from exc
        except ClaimLost:
            run.ctx.claim_lost.set()
            raise
        except psycopg.OperationalError as exc:
            log.warning("chunk %d of step %s (execution %s), pipelined in the server: "
                        "connection lost (%s)%s", run.seq, x.step_name, x.execution_id, exc,
                        "; checking whether it committed" if self.in_flight else "")
        if self.in_flight:
            found, committed = run._probe_until(time.monotonic() + run.outage)
            if committed is not None:  # it committed: its checkpoint from the database
                self._applied(found, committed)
                return bool(found["stop_requested"])
        elif self.last is not None:
            return bool(self.last["stop_requested"])
        return run._commit_in_server(self.server)  # the chunk again, one statement

    def _loop(self, committer: ThreadPoolExecutor) -> bool | None:
        run = self.chunk_run
        cur = 0
        page = self._insert(self.conns[cur], run.committed, run.seq)
        while True:
            if page.read == 0:
                self.conns[cur].rollback()  # the end of the input commits nothing
                return None
            ctx = run.ctx
            if ctx.settled or ctx.claim_lost.is_set():
                raise ClaimLost(f"claim of job {ctx.job.id} is lost or already settled")
            commit: Future[dict[str, Any]] = committer.submit(
                self._commit, self.conns[cur], run.seq, page)
            self.in_flight = True
            nxt: ServerChunkResult | None = None
            try:
                nxt = self._insert(self.conns[1 - cur], page.context, run.seq + 1)
            except BaseException:
                self._settle(commit, page.context)
                raise
            self._settle(commit, page.context)
            assert self.last is not None
            if self.last["stop_requested"] or self._must_stop():
                self.conns[1 - cur].rollback()  # chunk N+1 is not written
                return bool(self.last["stop_requested"])
            page, cur = nxt, 1 - cur

    def _must_stop(self) -> bool:
        """The chunk loop's checks after a commit other than the stop read-back."""
        run = self.chunk_run
        return bool(run.sctx.stop_asked or run.pause_read_back
                    or run.ctx.stop_requested.is_set())

    def _settle(self, commit: Future[dict[str, Any]], context: ExecutionContext) -> None:
        """Wait for the commit in flight; once acknowledged, the run moves past it."""
        row = commit.result()
        self._applied(row, context)

    def _applied(self, row: dict[str, Any], context: ExecutionContext) -> None:
        run, x = self.chunk_run, self.chunk_run.sctx
        self.in_flight = False
        self.last = row
        run.seq, run.committed = int(row["chunk_seq"]), context
        run.pause_read_back = bool(row.get("pause_requested"))
        claim = run.ctx.claim
        if claim is not None:
            claim.extended()
        fault_point("after_commit_before_ack", execution_id=x.execution_id, step=x.step_name,
                    seq=run.seq)

    def _insert(self, conn: Conn, committed: ExecutionContext, seq: int) -> ServerChunkResult:
        """Part 1 of chunk ``seq``: BEGIN and the page insert after ``committed``'s cursor."""
        x = self.chunk_run.sctx
        query, params = self.server.statement(conn, committed, None)
        try:
            with conn.pipeline(), conn.cursor(row_factory=dict_row) as cur:
                cur.execute("begin")
                cur.execute(query, params)
                row = cur.fetchone()
        except psycopg.Error as exc:
            mine = translate(exc)
            if mine is not None:
                raise mine from exc
            raise
        assert row is not None
        done = ServerChunk.result(row)
        if done.null_keys:
            raise null_key_error(self.server)
        fault_point("after_write_before_commit", execution_id=x.execution_id, step=x.step_name,
                    seq=seq)
        return done

    def _commit(self, conn: Conn, seq: int, page: ServerChunkResult) -> dict[str, Any]:
        """Part 2 of chunk ``seq`` (on the committer thread): commit_chunk, then COMMIT."""
        run = self.chunk_run
        item = run.ctx.job
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(COMMIT_CHUNK, [
                    Int8(run.step_execution_id), item.id, item.claim_token, Int8(seq),
                    Jsonb(page.context), Int8(page.read), Int8(page.read), run.lease,
                ]).fetchone()
                assert row is not None
                if not row["applied"]:  # only a run that lost track of its sequence gets here
                    raise RuntimeError(f"chunk {seq} of step {run.sctx.step_name!r} was"
                                       " committed before: the pipeline lost its sequence")
                cur.execute("commit")
        except psycopg.Error as exc:
            mine = translate(exc)
            if mine is not None:
                raise mine from exc
            raise
        return row

    def _release(self, conn: Conn) -> None:
        """Roll back what is open on ``conn`` and give it back to the pool."""
        try:
            if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                conn.rollback()
        except psycopg.Error:
            pass
        self.pool.putconn(conn)
