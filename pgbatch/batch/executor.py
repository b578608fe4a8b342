"""The step executor: runs a batch work item (``{"kind": "batch_step",
"execution_id", "step"}``) on a worker, through the executor seam.

One claim runs the execution's current step: ``start_execution`` (which
recovers the execution first when its last worker was lost), then
``start_step`` (skipping steps the restart rules skip), then the step (a
tasklet once; a chunk step chunk by chunk, see :mod:`pgbatch.batch.chunks`),
then ``end_step`` acked by the worker's settler with the hand-off effects that
enqueue the next step's work item. A stop requested by an operator is seen at
each chunk commit and step start; a worker's shutdown after the next chunk
commit (``on_shutdown``: ``handoff_execution`` gives the execution to the next
worker, ``stop`` ends it STOPPED, ``pause`` parks it PAUSED). Pauses
(``ctx.request_pause()``, ``PauseJob``, an operator's pause seen at a chunk
commit or step start) park the execution (:mod:`pgbatch.batch.pausing`); a
gate step parks it AWAITING_APPROVAL and acks the item without a follow-up
(:mod:`pgbatch.batch.gates`); both then call the ``on_parked`` hook. Every
transaction is fenced by the claim.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from pgbatch._errors import (
    ClaimLost,
    IndeterminateWriteError,
    InvalidResumeAt,
    JobDefinitionChangedError,
)
from pgbatch._types import AckEffects, ClaimedJob, EnqueueRequest
from pgbatch.batch.calls import call_row
from pgbatch.batch.chunks import ChunkRun
from pgbatch.batch.context import StepContext, reset_step_context, set_step_context
from pgbatch.batch.definition import Gate, Job, TaskletStep
from pgbatch.batch.faults import fault_point
from pgbatch.batch.gates import run_gate
from pgbatch.batch.parking import ParkedHook, call_parked_hook
from pgbatch.batch.pausing import PauseJob, PauseSource, park, parked_record
from pgbatch.worker.context import JobContext
from pgbatch.worker.executor import Call, UnknownHandler

log = logging.getLogger("pgbatch.batch")

#: The kind of the batch engine's work items.
BATCH_KIND = "batch_step"
_RUNNING = ("STARTED", "STOPPING", "PAUSING")


class BatchExecutor:
    """Runs the work items of ``jobs``.

    Register it with ``app.register_executor(BATCH_KIND, BatchExecutor(jobs))``
    (or :func:`pgbatch.batch.use_batch`, which adds the recovery service too).
    ``lease``: the lease of its claims, extended at every chunk commit and by
    the worker's lease keeper. ``poll_interval``: how often a tasklet's
    ``ctx.stop_requested()`` reads an operator's stop from the database.
    ``outage``: seconds a chunk commit keeps retrying while the database is
    unreachable before the attempt fails. ``on_parked``: called (on the worker
    thread, after the commit) with a :class:`~pgbatch.batch.parking.Parked`
    each time this executor parks an execution (PAUSED, or AWAITING_APPROVAL at
    a gate); its exceptions are logged. ``pipeline``: a chunk step run in the
    server overlaps each chunk's durable commit with the next chunk's insert
    on a second connection of the sync pool (:mod:`pgbatch.batch.pipeline`);
    False commits its chunks one by one. ``server_loop``: such a step runs its
    chunk loop in the database (``pgbatch.run_server_chunks``, one call per
    second of chunks, :mod:`pgbatch.batch.server_loop`), the default; False:
    the worker sends each chunk (``pipeline`` says how).
    """

    def __init__(self, jobs: Iterable[Job], lease: timedelta = timedelta(seconds=30),
                 poll_interval: float = 1.0, outage: float = 60.0, *,
                 on_parked: ParkedHook | None = None, pipeline: bool = True,
                 server_loop: bool = True) -> None:
        self._jobs = {job.name: job for job in jobs}
        self._pipeline = pipeline
        self._server_loop = server_loop
        self._on_parked = on_parked
        self._lease = lease
        self._poll_interval = poll_interval
        self._outage = outage
        self._fingerprints: dict[str, str] = {}
        self._lock = threading.Lock()
        self._on_parked = on_parked

    @property
    def jobs(self) -> Sequence[Job]:
        """The jobs this executor runs."""
        return list(self._jobs.values())

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

    def registered(self, fingerprints: dict[str, str]) -> None:
        """Record the fingerprints ``register_job`` returned for this executor's jobs."""
        with self._lock:
            self._fingerprints.update(fingerprints)

    def _fingerprint(self, conn: psycopg.Connection[Any], job: Job) -> str:
        with self._lock:
            fp = self._fingerprints.get(job.name)
        if fp is None:
            fp = str(call_row(conn, "select pgbatch.register_job(%s, %s) as fp",
                              [job.name, Jsonb(job.definition())])["fp"])
            self.registered({job.name: fp})
        return fp

    # -- one work item ------------------------------------------------------------------
    def _run(self, ctx: JobContext) -> None:
        item = ctx.job
        execution_id = int(item.payload["execution_id"])
        with ctx.fenced_sync() as conn:
            row = call_row(conn, "select * from pgbatch.start_execution(%s, %s, %s)",
                           [execution_id, item.id, item.claim_token])
            if row["status"] not in _RUNNING:
                ctx.ack_in_sync(conn)
                return
            job = self._jobs.get(row["job_name"])
            if job is None:
                raise UnknownHandler(f"job {row['job_name']!r} is not known to this worker",
                                     "UnknownJob")
            if self._fingerprint(conn, job) != row["definition_fp"]:
                raise JobDefinitionChangedError(
                    f"execution {execution_id} of job {job.name!r} runs definition "
                    f"{row['definition_fp']}, this worker has another one; a worker with that "
                    "definition runs it")
        fault_point("after_claim", execution_id=execution_id)
        step_name: str | None = str(row["current_step"])
        while step_name is not None:
            fault_point("before_step_start", execution_id=execution_id, step=step_name)
            with ctx.fenced_sync() as conn:
                s = call_row(conn, "select * from pgbatch.start_step(%s, %s, %s, %s)",
                             [execution_id, step_name, item.id, item.claim_token])
                control = call_row(conn, "select * from pgbatch.execution_control(%s, %s, %s)",
                                   [execution_id, item.id, item.claim_token]) \
                    if s["action"] == "run" else {}
                if s["action"] not in ("run", "skip"):
                    log.info("batch execution %s ends at step %s: %s", execution_id, step_name,
                             s["action"])
                    ctx.ack_in_sync(conn)
                    return
            if s["action"] == "skip":
                step_name = job.step_after(step_name)
                continue
            if control.get("pause_requested"):  # an operator's pause, seen at the step start
                self._park(ctx, job, None, None, "operator")
                return
            self._run_step(ctx, job, step_name, s, dict(control.get("params") or {}))
            return

    def _run_step(self, ctx: JobContext, job: Job, step_name: str, s: dict[str, Any],
                  params: dict[str, Any]) -> None:
        item = ctx.job
        step = job.by_name[step_name]
        if isinstance(step, Gate):
            run_gate(ctx, job, step, self._on_parked)
            return
        execution_id = int(item.payload["execution_id"])
        sctx = StepContext(execution_id, job.name, step_name, int(s["step_execution_id"]),
                           params=params, shutdown=ctx.stop_requested.is_set,
                           probe=lambda: self._operator_stop(ctx, execution_id),
                           poll_interval=self._poll_interval)
        status, code, message = "COMPLETED", None, None
        token = set_step_context(sctx)
        try:
            if isinstance(step, TaskletStep):
                _call_tasklet(step, sctx)
                pause = sctx.pause_asked
                if pause is not None:
                    self._park(ctx, job, pause.reason, pause.resume_at, "logic", step_done=True)
                    return
                if sctx.stop_asked:
                    status = "STOPPED"
            else:
                run = ChunkRun(ctx, step, sctx, s, self._lease, job.on_shutdown, self._outage,
                               pipeline=self._pipeline, server_loop=self._server_loop)
                outcome = run.run()
                if outcome == "HANDOFF":
                    self._handoff(ctx, execution_id)
                    return
                if outcome == "PAUSED":
                    assert run.parked is not None
                    self._parked(execution_id, job, run.parked)
                    return
                if outcome in ("PAUSE_OPERATOR", "PAUSE_SHUTDOWN"):
                    self._park(ctx, job, None, None,
                               "operator" if outcome == "PAUSE_OPERATOR" else "shutdown")
                    return
                if outcome == "SHUTDOWN_STOP":
                    status, message = "STOPPED", "stopped at the worker's shutdown"
                else:
                    status = outcome
        except PauseJob as exc:
            try:
                self._park(ctx, job, exc.reason, exc.resume_at, "exception")
                return
            except InvalidResumeAt as bad:
                log.warning("batch step %s: PauseJob refused: %s", step_name, bad)
                status, message = "FAILED", f"{type(bad).__name__}: {bad}"
        except IndeterminateWriteError as exc:
            log.warning("batch step %s: output indeterminate: %s", step_name, exc)
            status, code, message = "UNKNOWN", "UNKNOWN", f"{type(exc).__name__}: {exc}"
        except (psycopg.OperationalError, JobDefinitionChangedError, ClaimLost):
            raise
        except Exception as exc:
            log.exception("batch step %s failed", step_name)
            status, message = "FAILED", f"{type(exc).__name__}: {exc}"
        finally:
            reset_step_context(token)
        with ctx.fenced_sync() as conn:
            end = call_row(conn, "select * from pgbatch.end_step(%s, %s, %s, %s,"
                                 " exit_code => %s, exit_message => %s, ack => false)",
                           [s["step_execution_id"], item.id, item.claim_token, status, code,
                            message])
            ctx.ack_in_sync(conn, _effects(end["effects"]))

    def _park(self, ctx: JobContext, job: Job, reason: str | None, resume_at: datetime | None,
              source: PauseSource, step_done: bool = False) -> None:
        execution_id = int(ctx.job.payload["execution_id"])
        row = park(ctx, execution_id, reason, resume_at, source, step_done)
        self._parked(execution_id, job, row)

    def _parked(self, execution_id: int, job: Job, row: dict[str, Any]) -> None:
        log.info("batch execution %s parked: %s (%s)", execution_id, row["status"],
                 row["pause_reason"])
        parked = parked_record(execution_id, job.name, row)
        if parked is not None:
            call_parked_hook(self._on_parked, parked)

    def _handoff(self, ctx: JobContext, execution_id: int) -> None:
        item = ctx.job
        with ctx.fenced_sync() as conn:
            row = call_row(conn, "select * from pgbatch.handoff_execution(%s, %s, %s,"
                                 " ack => false)", [execution_id, item.id, item.claim_token])
            ctx.ack_in_sync(conn, _effects(row["effects"]))
        log.info("batch execution %s handed off at shutdown: %s", execution_id, row["status"])

    def _operator_stop(self, ctx: JobContext, execution_id: int) -> bool:
        item = ctx.job
        with ctx.fenced_sync() as conn:
            row = call_row(conn, "select * from pgbatch.execution_control(%s, %s, %s)",
                           [execution_id, item.id, item.claim_token])
        return bool(row["stop_requested"])


def _call_tasklet(step: TaskletStep, sctx: StepContext) -> None:
    try:
        params = [p for p in inspect.signature(step.fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if params:
        step.fn(sctx)
    else:
        step.fn()


def _effects(effects: dict[str, Any] | None) -> AckEffects | None:
    """end_step's and handoff_execution's effects (the next work item) as AckEffects."""
    if not effects:
        return None
    return AckEffects(enqueue=[
        EnqueueRequest(queue=r["queue"], payload=r["payload"], id=UUID(r["id"]))
        for r in effects["enqueue"]])
