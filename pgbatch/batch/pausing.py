"""Pausing a running execution from the worker (BATCH.md §4.3, docs/batch-pause.md).

An execution parks PAUSED, at a committed checkpoint, in one of five ways,
all through ``pgbatch.park_execution`` (fenced by the claim; the work item is
acked without follow-up in the same transaction, so nothing runs it until a
resume):

- ``ctx.request_pause(reason, resume_at=None)`` in a chunk step: the chunk
  is cut at the current item, and its commit and the pause are one
  transaction (:func:`commit_and_park`);
- ``raise PauseJob(reason, resume_at=None)`` (chunk step or tasklet): the
  chunk's transaction rolls back; a transaction of its own parks at the
  previous checkpoint (the rolled-back items are read again on resume);
- ``ctx.request_pause()`` in a tasklet: when it returns the step ends
  COMPLETED and the execution parks before the next step;
- an operator's ``pause_execution`` (PAUSING), read back at a chunk commit
  or a step start;
- a worker's shutdown with ``on_shutdown='pause'``, after its last chunk
  commit.

After the parking commit the executor calls its ``on_parked`` hook (see
:mod:`pgbatch.batch.parking`); the transaction itself notified
``pgbatch_batch_parked``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from pgbatch.batch.calls import call_row
from pgbatch.batch.context import pause_request
from pgbatch.batch.faults import fault_point
from pgbatch.batch.parking import Parked
from pgbatch.worker.context import JobContext

if TYPE_CHECKING:
    from pgbatch.batch.chunks import ChunkRun, _Chunk

#: What made the execution park (the ``source`` of park_execution and its event).
PauseSource = Literal["logic", "exception", "operator", "shutdown"]

PARK = ("select * from pgbatch.park_execution(%s, %s, %s, reason => %s, resume_at => %s,"
        " source => %s, step_done => %s, ack => false)")


class PauseJob(Exception):
    """Raised by processing logic (a reader, processor, writer or tasklet) to pause
    the execution at the last committed checkpoint: the current chunk rolls back
    and is read again on resume. ``resume_at`` (tz-aware): resume by itself then."""

    def __init__(self, reason: str, resume_at: datetime | None = None) -> None:
        request = pause_request(reason, resume_at)
        super().__init__(request.reason)
        self.reason = request.reason
        self.resume_at = request.resume_at


def park_in(ctx: JobContext, conn: psycopg.Connection[Any], execution_id: int,
            reason: str | None, resume_at: datetime | None, source: PauseSource,
            step_done: bool = False) -> dict[str, Any]:
    """``park_execution`` in the open ``ctx.fenced_sync()`` transaction on ``conn``,
    and the work item's ack in it; returns park_execution's row."""
    item = ctx.job
    row = call_row(conn, PARK, [execution_id, item.id, item.claim_token, reason, resume_at,
                                source, step_done])
    ctx.ack_in_sync(conn)
    return row


def park(ctx: JobContext, execution_id: int, reason: str | None, resume_at: datetime | None,
         source: PauseSource, step_done: bool = False) -> dict[str, Any]:
    """Park the execution in a fenced transaction of its own (see the module docstring)."""
    with ctx.fenced_sync() as conn:
        return park_in(ctx, conn, execution_id, reason, resume_at, source, step_done)


def commit_and_park(run: ChunkRun, chunk: _Chunk) -> dict[str, Any]:
    """``request_pause()`` in a chunk step: write ``chunk``, commit it (``commit_chunk``)
    and park the execution, in one fenced transaction; returns park_execution's row.

    A connection lost during this commit is not probed like a plain chunk's: the
    attempt fails; either the pause committed (the work item is acked) or the
    execution is recovered at the previous checkpoint.
    """
    from pgbatch.batch.chunks import _COMMIT  # noqa: PLC0415 - chunks imports this module

    request = run.sctx.pause_asked
    assert request is not None
    x = run.sctx
    context = run._context_after()
    with run.ctx.fenced_sync() as conn:
        if chunk.items:
            run.writer.write(conn, chunk.items)
        fault_point("after_write_before_commit", execution_id=x.execution_id,
                    step=x.step_name, seq=run.seq)
        committed = call_row(conn, _COMMIT, run._args(chunk, context))
        row = park_in(run.ctx, conn, x.execution_id, request.reason, request.resume_at, "logic")
    run.seq, run.committed = int(committed["chunk_seq"]), context
    return row


def parked_record(execution_id: int, job_name: str, row: dict[str, Any]) -> Parked | None:
    """The :class:`Parked` of a park_execution row; None when it did not park (a stop
    asked first ended it STOPPED; a tasklet's pause after the last step COMPLETED)."""
    if row["status"] != "PAUSED":
        return None
    return Parked(execution_id=execution_id, job_name=job_name, status="PAUSED",
                  step=row["step"], reason=row["pause_reason"], resume_at=row["resumes_at"])
