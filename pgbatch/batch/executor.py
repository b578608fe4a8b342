"""The step executor: runs a batch work item (``{"kind": "batch_step",
"execution_id", "step"}``) on a worker, through the executor seam.

One claim runs the execution's current step: ``start_execution``, then
``start_step`` (skipping steps the restart rules skip), then the step (a
tasklet once; a chunk step chunk by chunk, each chunk's writes and
``commit_chunk`` in one fenced transaction), then ``end_step`` acked by the
worker's settler with the hand-off effects that enqueue the next step's work
item. A stop requested by an operator is seen at each chunk commit and step
start. Every transaction is fenced by the claim.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgbatch._types import AckEffects, ClaimedJob, EnqueueRequest
from pgbatch.batch.definition import ChunkStep, Job, TaskletStep
from pgbatch.worker.context import JobContext
from pgbatch.worker.executor import Call, UnknownHandler

log = logging.getLogger("pgbatch.batch")

#: The kind of the batch engine's work items.
BATCH_KIND = "batch_step"
_RUNNING = ("STARTED", "STOPPING", "PAUSING")


class BatchExecutor:
    """Runs the work items of ``jobs``.

    Register it with ``app.register_executor(BATCH_KIND, BatchExecutor(jobs))``.
    """

    def __init__(self, jobs: Iterable[Job], lease: timedelta = timedelta(seconds=30)) -> None:
        self._jobs = {job.name: job for job in jobs}
        self._lease = lease

    def queues(self) -> Sequence[str]:
        """The batch queues of the jobs."""
        return sorted({job.queue for job in self._jobs.values()})

    def claim_lease(self, queue: str) -> timedelta | None:
        """Claims of batch work items take the executor's lease."""
        return self._lease

    def resolve(self, job: ClaimedJob) -> Call:
        """A call that runs the work item's step."""
        payload = job.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("execution_id"), int):
            raise UnknownHandler(f"batch work item {job.id} has no execution_id", "UnknownStep")
        return Call(name=f"batch:{payload.get('step')}", fn=self._run, is_async=False,
                    lease=self._lease)

    def _run(self, ctx: JobContext) -> None:
        item = ctx.job
        execution_id = int(item.payload["execution_id"])
        with ctx.fenced_sync() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute("select * from pgbatch.start_execution(%s, %s, %s)",
                              [execution_id, item.id, item.claim_token]).fetchone()
            assert row is not None
            job = self._jobs.get(row["job_name"])
            if row["status"] not in _RUNNING:
                ctx.ack_in_sync(conn)
                return
            if job is None:
                raise UnknownHandler(f"job {row['job_name']!r} is not known to this worker",
                                     "UnknownJob")
        step_name: str | None = str(row["current_step"])
        while step_name is not None:
            with ctx.fenced_sync() as conn, conn.cursor(row_factory=dict_row) as cur:
                s = cur.execute("select * from pgbatch.start_step(%s, %s, %s, %s)",
                                [execution_id, step_name, item.id, item.claim_token]).fetchone()
                assert s is not None
                if s["action"] not in ("run", "skip"):
                    log.info("batch execution %s ends at step %s: %s", execution_id, step_name,
                             s["action"])
                    ctx.ack_in_sync(conn)
                    return
            if s["action"] == "skip":
                step_name = job.step_after(step_name)
                continue
            self._run_step(ctx, job, step_name, s)
            return

    def _run_step(self, ctx: JobContext, job: Job, step_name: str, s: dict[str, Any]) -> None:
        item = ctx.job
        step = job.by_name[step_name]
        status, message = "COMPLETED", None
        try:
            if isinstance(step, TaskletStep):
                step.fn()
            else:
                status = self._run_chunks(ctx, step, s)
        except Exception as exc:
            log.exception("batch step %s failed", step_name)
            status, message = "FAILED", f"{type(exc).__name__}: {exc}"
        with ctx.fenced_sync() as conn, conn.cursor(row_factory=dict_row) as cur:
            end = cur.execute(
                "select * from pgbatch.end_step(%s, %s, %s, %s, exit_message => %s, ack => false)",
                [s["step_execution_id"], item.id, item.claim_token, status, message]).fetchone()
            assert end is not None
            ctx.ack_in_sync(conn, _effects(end["effects"]))

    def _run_chunks(self, ctx: JobContext, step: ChunkStep, s: dict[str, Any]) -> str:
        item = ctx.job
        done = int(s["context"].get("read", 0))
        seq = int(s["chunk_seq"])
        items = iter(step.reader(done))
        while True:
            chunk = list(itertools.islice(items, step.chunk_size))
            if not chunk:
                return "COMPLETED"
            with ctx.fenced_sync() as conn, conn.cursor(row_factory=dict_row) as cur:
                step.writer(conn, chunk)
                row = cur.execute(
                    "select * from pgbatch.commit_chunk(%s, %s, %s, %s, %s,"
                    " read_count => %s, write_count => %s, lease => %s)",
                    [s["step_execution_id"], item.id, item.claim_token, seq,
                     Jsonb({"read": done + len(chunk)}), len(chunk), len(chunk), self._lease],
                ).fetchone()
                assert row is not None
            seq, done = int(row["chunk_seq"]), done + len(chunk)
            if row["stop_requested"]:
                return "STOPPED"


def _effects(effects: dict[str, Any] | None) -> AckEffects | None:
    """end_step's hand-off effects (the next step's work item) as AckEffects."""
    if not effects:
        return None
    return AckEffects(enqueue=[
        EnqueueRequest(queue=r["queue"], payload=r["payload"], id=UUID(r["id"]))
        for r in effects["enqueue"]])
