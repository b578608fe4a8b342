"""The runner: resolves a claimed job's handler, runs it, settles by its outcome.

The job's kind (``executor.kind_of``) picks the executor, which resolves the
job into a ``Call``. Async handlers run on the event loop (in the slot's own
task, no extra task per job), sync ones on the worker's daemon threads. The
outcome is classified and handed to the settler:

- returned ``Ack`` (or ``AckEffects``, or anything else, ``None`` included)
  → a batched ack (the effects applied with it); nothing when the handler
  already acked in its own transaction. A task's other return value is kept
  with the job (``returned_effects``: ``AckEffects(return_value=...)``, sent
  with ``ack_many``); ``None`` stays on the plain ``ack_ids`` path. A value
  that is not JSON or is over ``max_result_bytes`` ends the job dead at once;
- ``Release``/``Nack``/``DeadLetter`` → that settlement, at once;
- an exception → a nack with ``{"type", "message", "traceback", "at"}``
  (retry with backoff, dead at the last attempt); ``ClaimLost`` → logged,
  nothing to settle;
- cancelled by ``cancel_job`` (async handlers are interrupted) → a nack, which
  ends the job cancelled;
- released at shutdown (grace period over) → the result is dropped: the
  claim was already given back.

Every finished run's duration feeds the prefetch policy, whatever the
outcome (a transactional ack included).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from pgbatch._errors import ClaimLost
from pgbatch._types import AckEffects, ClaimedJob
from pgbatch.worker.claim import Claim, ClaimKey
from pgbatch.worker.context import ClaimServices, JobContext
from pgbatch.worker.executor import (
    DEFAULT_KIND,
    Ack,
    Call,
    DeadLetter,
    Executor,
    Nack,
    Outcome,
    Release,
    UnknownHandler,
    kind_of,
)
from pgbatch.worker.failures import Abort, ResultRefused, Retry, TaskTimeout, returned_effects
from pgbatch.worker.lease_keeper import LeaseKeeper
from pgbatch.worker.log_context import JobLogContext
from pgbatch.worker.log_context import _current as _current_job
from pgbatch.worker.prefetch import PrefetchPolicy
from pgbatch.worker.settler import Settler
from pgbatch.worker.threads import DaemonThreadRunner

log = logging.getLogger("pgbatch.worker")


@dataclass
class RunStats:
    """Counters of the runner."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    first_started_at: float | None = None


class _Running:
    """A job being run: what cancellation, loss and shutdown act on."""

    __slots__ = ("call", "claim", "ctx", "handle", "released")

    def __init__(self, claim: Claim, call: Call, ctx: JobContext,
                 handle: asyncio.Task[Any] | None) -> None:
        self.claim = claim
        self.call = call
        self.ctx = ctx
        self.handle = handle
        self.released = False

    def claim_cancelled(self, claim: Claim) -> None:
        self.ctx.cancelled.set()
        if self.call.is_async and self.call.interrupt and self.handle is not None:
            self.handle.cancel()

    def claim_lost(self, claim: Claim) -> None:
        self.ctx.claim_lost.set()


class _Finished:
    """The watcher of a claim whose job finished: late news is of no use."""

    def claim_cancelled(self, claim: Claim) -> None:
        return None

    def claim_lost(self, claim: Claim) -> None:
        return None


#: Also breaks the claim -> running job -> claim cycle, so a finished job's
#: objects are freed at once by reference counting, not by the cyclic GC.
_FINISHED = _Finished()


class Runner:
    """Runs claimed jobs through the executor of their kind."""

    def __init__(self, executors: Mapping[str, Executor], *, worker_id: str,
                 services: ClaimServices, settler: Settler, lease_keeper: LeaseKeeper,
                 threads: DaemonThreadRunner, prefetch: PrefetchPolicy) -> None:
        self.executors = executors
        self.worker_id = worker_id
        self.services = services
        self.settler = settler
        self.lease_keeper = lease_keeper
        self.threads = threads
        self.prefetch = prefetch
        self.stats = RunStats()
        self.stopping = False
        self.aborting = False
        self._running: dict[ClaimKey, _Running] = {}

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._running)

    # -- control -----------------------------------------------------------------
    def request_stop(self) -> None:
        """Tell every running job (and every job started from now on) to stop soon."""
        self.stopping = True
        for r in list(self._running.values()):
            r.ctx.request_stop()

    def abort(self) -> None:
        """Interrupt every running job; nothing is settled."""
        self.aborting = True
        for r in list(self._running.values()):
            if r.handle is not None:
                r.handle.cancel()

    async def release_all(self) -> None:
        """Give back the claims of the jobs still running (end of the grace period)."""
        for r in list(self._running.values()):
            r.released = True
            r.ctx.released.set()
            if r.handle is not None:
                r.handle.cancel()
            self._finish(r)
            await self.settler.release(r.claim.job, "not finished within the grace period")

    # -- running -----------------------------------------------------------------
    async def run(self, claim: Claim) -> None:
        """Run one claimed job to its settlement (or its release), as the current job for logs."""
        job = claim.job
        payload = job.payload
        name = payload.get("task") if isinstance(payload, dict) else None
        token = _current_job.set(JobLogContext(job.id, job.queue,
                                               name if isinstance(name, str) else kind_of(job),
                                               job.attempt))
        try:
            await self._run(claim)
        finally:
            _current_job.reset(token)

    async def _run(self, claim: Claim) -> None:
        job = claim.job
        self.stats.started += 1
        if self.stats.first_started_at is None:
            self.stats.first_started_at = time.time()
        payload = job.payload
        kind = payload.get("kind", DEFAULT_KIND) if isinstance(payload, dict) else DEFAULT_KIND
        if not isinstance(kind, str):
            kind = kind_of(job)
        try:
            executor = self.executors.get(kind)
            if executor is None:
                raise UnknownHandler(f"no executor for job kind {kind!r} is registered "
                                     "in this worker")
            call = executor.resolve(job)
        except UnknownHandler as exc:
            self.lease_keeper.drop(claim)
            self.stats.failed += 1
            if isinstance(exc, Abort):  # an unknown task: no retry can find it
                await self._abort_job(job, None, exc)
                return
            state = await self.settler.nack(job, {"type": exc.error_type, "message": str(exc)})
            _log_failure(job, None, exc, state, with_traceback=False)
            return
        except Exception as exc:  # noqa: BLE001 - an executor that cannot resolve: a nack
            self.lease_keeper.drop(claim)
            self.stats.failed += 1
            state = await self.settler.nack(job, error_info(exc))
            _log_failure(job, None, exc, state)
            return
        claim.lease = call.lease
        ctx = JobContext(job, call.name, self.worker_id, kind=kind, claim=claim,
                         services=self.services)
        if self.stopping:
            ctx.request_stop()
        current = asyncio.current_task()
        r = _Running(claim, call, ctx, current)
        claim.watcher = r
        self._running[claim.key] = r
        started = time.monotonic()
        try:
            outcome = await self._invoke(call, ctx)
        except asyncio.CancelledError:
            self._finish(r)
            if r.released or self.aborting:
                raise  # given back at shutdown, or aborting: nothing to settle
            # cancelled through cancel_job: settle as failed (the job ends cancelled)
            if current is not None:
                current.uncancel()
            if not ctx.claim_lost.is_set():
                await self.settler.nack(job, {"type": "Cancelled",
                                              "message": "cancelled while running"},
                                        backoff_base=call.backoff_base,
                                        backoff_cap=call.backoff_cap)
            return
        except ClaimLost as exc:
            self._finish(r)
            self.stats.lost += 1
            log.warning("lost claim: job %s (attempt %d) stopped: %s", job.id, job.attempt, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a handler failure is a nack, not a crash
            self._finish(r)
            if r.released:
                return
            self.prefetch.observe(time.monotonic() - started)
            self.stats.failed += 1
            if isinstance(exc, Abort):
                await self._abort_job(job, call.name, exc)
                return
            retry_at = exc.retry_at() if isinstance(exc, Retry) else None
            state = await self.settler.nack(job, error_info(exc), retry_at=retry_at,
                                            backoff_base=call.backoff_base,
                                            backoff_cap=call.backoff_cap)
            _log_failure(job, call.name, exc, state)
            return
        self._running.pop(claim.key, None)
        self.lease_keeper.drop(claim)
        claim.watcher = _FINISHED
        self.prefetch.observe(time.monotonic() - started)
        if r.released:
            return
        if outcome is None and not ctx.settled:  # the common case: a plain ack
            self.stats.succeeded += 1
            self.settler.ack(job, None)
            return
        await self._settle(r, outcome)

    async def _abort_job(self, job: ClaimedJob, name: str | None, exc: Abort) -> None:
        """Dead-letter the job at once: its failure is one no retry can fix."""
        if await self.settler.dead_letter(job, exc.reason()):
            log.error("job %s (%s, queue %s, attempt %d) is dead: %s", job.id,
                      name or _task_name(job), job.queue, job.attempt, exc.reason(),
                      exc_info=exc if exc.__traceback__ is not None else None)

    def _finish(self, r: _Running) -> None:
        self._running.pop(r.claim.key, None)
        self.lease_keeper.drop(r.claim)
        r.claim.watcher = _FINISHED

    async def _invoke(self, call: Call, ctx: JobContext) -> Any:
        fn = call.fn
        if call.timeout:
            return await self._invoke_with_timeout(call, ctx, call.timeout)
        if call.is_async:
            return await fn(ctx)
        job_context = contextvars.copy_context()  # the thread sees the current job too
        return await self.threads.run(lambda: job_context.run(fn, ctx))

    async def _invoke_with_timeout(self, call: Call, ctx: JobContext, timeout: float) -> Any:
        """Run ``call`` under its timeout; raise ``TaskTimeout`` when it runs past it.

        An async call is cancelled at the timeout. A sync call's thread cannot
        be stopped: the slot (and the claim, whose lease keeps being renewed)
        is held until it returns, then the attempt fails, so no other attempt
        of the job runs meanwhile.
        """
        fn = call.fn
        if call.is_async:
            scope = asyncio.timeout(timeout)
            try:
                async with scope:
                    return await fn(ctx)
            except TimeoutError:
                if not scope.expired():
                    raise  # the task's own TimeoutError
                raise TaskTimeout(f"{call.name} did not finish within its timeout of "
                                  f"{timeout:g}s and was cancelled") from None
        job_context = contextvars.copy_context()
        thread = asyncio.ensure_future(self.threads.run(lambda: job_context.run(fn, ctx)))
        done, _ = await asyncio.wait([thread], timeout=timeout)
        if done:
            return thread.result()
        log.warning("job %s (%s) ran past its timeout of %gs; a sync task cannot be "
                    "interrupted: its slot and claim are held until it returns",
                    ctx.job.id, call.name, timeout)
        started = time.monotonic()
        try:
            await asyncio.shield(thread)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001, S110 - the attempt failed by its timeout anyway
            pass
        raise TaskTimeout(f"{call.name} did not finish within its timeout of {timeout:g}s "
                          f"(a sync task: it returned {time.monotonic() - started + timeout:.1f}s"
                          " after it started)")

    async def _settle(self, r: _Running, outcome: Any) -> None:
        job = r.claim.job
        if r.ctx.settled:
            self.stats.succeeded += 1  # acked in its own transaction
            return
        if not isinstance(outcome, Outcome) or isinstance(outcome, Ack):
            effects = outcome.effects if isinstance(outcome, Ack) else outcome
            if r.ctx.kind == DEFAULT_KIND and not isinstance(outcome, Ack):
                try:  # a task's return value is kept with the job
                    effects = returned_effects(effects)
                except ResultRefused as exc:
                    self.stats.failed += 1
                    await self._abort_job(job, r.call.name, exc)
                    return
            self.stats.succeeded += 1
            self.settler.ack(job, effects if isinstance(effects, AckEffects) else None)
        elif isinstance(outcome, Release):
            await self.settler.release(job, outcome.reason)
        elif isinstance(outcome, Nack):
            self.stats.failed += 1
            state = await self.settler.nack(job, outcome.error, retry_at=outcome.retry_at,
                                            backoff_base=r.call.backoff_base,
                                            backoff_cap=r.call.backoff_cap)
            if state is not None:
                log.log(logging.ERROR if state == "dead" else logging.WARNING,
                        "job %s (%s, queue %s) attempt %d %s: Nack(%s)", job.id, r.call.name,
                        job.queue, job.attempt,
                        "is dead" if state == "dead" else f"failed (now {state})", outcome.error)
        elif isinstance(outcome, DeadLetter):
            self.stats.failed += 1
            if await self.settler.dead_letter(job, outcome.reason):
                log.error("job %s (%s, queue %s, attempt %d) is dead: DeadLetter(%s)", job.id,
                          r.call.name, job.queue, job.attempt, outcome.reason)


def _task_name(job: ClaimedJob) -> str:
    payload = job.payload
    name = payload.get("task") if isinstance(payload, dict) else None
    return name if isinstance(name, str) else "?"


def _log_failure(job: ClaimedJob, name: str | None, exc: BaseException, state: str | None, *,
                 with_traceback: bool = True) -> None:
    """A failed attempt at WARNING, a job that is now dead at ERROR, each with its traceback."""
    if state is None:  # the nack itself failed or the claim was lost: the settler said so
        return
    level = logging.ERROR if state == "dead" else logging.WARNING
    what = "is dead" if state == "dead" else f"failed (now {state})"
    log.log(level, "job %s (%s, queue %s) attempt %d %s: %s: %s", job.id,
            name or _task_name(job), job.queue, job.attempt, what, type(exc).__qualname__, exc,
            exc_info=exc if with_traceback else None)


#: Frames of the worker's own machinery, left out of the head of a stored traceback.
_INTERNAL_DIRS = (str(Path(__file__).resolve().parent) + os.sep,
                  str(Path(asyncio.__file__).resolve().parent) + os.sep)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without its leading frames in ``pgbatch.worker`` and ``asyncio`` (all if none)."""
    first = tb
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        tb = tb.tb_next
    return tb if tb is not None else first


def error_info(exc: BaseException) -> dict[str, Any]:
    """The ``last_error`` of a failed attempt; its traceback starts at the task's own code."""
    return {
        "type": type(exc).__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc,
                                                        _user_frames(exc.__traceback__))),
        "at": datetime.now().astimezone().isoformat(),
    }
