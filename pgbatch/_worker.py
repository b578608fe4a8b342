"""The worker: claims jobs, runs tasks, settles, renews leases, shuts down cleanly.

One ``Worker`` is one process's worth of slots (``concurrency``). Its parts,
each owning its own connections:

- ``Listener``: the LISTEN connection; turns notifications into wakeups.
- ``WakeupDispatcher``: parks idle slots; one wakeup makes one slot claim a
  batch sized to the free capacity and hand the jobs to the other idle slots.
- ``Settler``: sends acks in batches (``ack_many``) with per-job outcomes.
- a lease keeper: renews the leases of jobs that run long (every third of the
  lease), and learns of cancellations and lost claims that way.
- ``Maintenance``: heartbeat, and when leader: reap, announce, compact, sweep.

Sync task functions run on daemon threads; async ones on the loop.

Errors: a task exception nacks the job (retry with backoff, dead at the last
attempt) with ``{"type", "message", "traceback"}`` stored as last_error. A
failed settlement — a lost claim included — is logged (a lost claim
distinctly) and the worker goes on. On the claim path, a dropped connection is
retried with backoff; any other error ends the worker (it is a bug or a
misconfiguration that retrying would hide).

Shutdown (SIGTERM/SIGINT, or ``stop()``): stop claiming, let running jobs
finish within ``shutdown_grace`` seconds, settle them, and release the rest
back to pending without consuming an attempt. A second signal ends the worker
at once; its claims then expire and are reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._app import App, JobContext, Task
from pgbatch._dispatcher import WakeupDispatcher
from pgbatch._errors import ClaimLost, JobCancelled, JobNotFound
from pgbatch._install import SCHEMA_COMPAT
from pgbatch._listener import Listener
from pgbatch._settler import Settler
from pgbatch._threads import DaemonThreadRunner
from pgbatch._types import AckEffects, ClaimedJob
from pgbatch.worker.maintenance import Maintenance, MaintenanceConfig

log = logging.getLogger("pgbatch.worker")


_default_ids = itertools.count(1)


def default_node_id() -> str:
    """``hostname:pid`` (``hostname:pid:n`` for a process's n-th worker, n > 1).

    Unique, but new at every start (no fast recovery). Give a stable
    ``node_id`` (a pod or unit name) so that a restarted worker releases its
    previous incarnation's claims at once. Two live workers must never share
    one, in one process or in two: each start releases the other's claims.
    """
    n = next(_default_ids)
    base = f"{socket.gethostname()}:{os.getpid()}"
    return base if n == 1 else f"{base}:{n}"


@dataclass
class WorkerStats:
    """Counters of one worker; tests and the benchmark read them."""

    claim_calls: int = 0
    claimed: int = 0
    empty_claims: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    released: int = 0
    renewals: int = 0
    lost_renewals: int = 0
    first_started_at: float | None = None


@dataclass
class _Running:
    job: ClaimedJob
    task: Task[Any, Any] | None
    ctx: JobContext | None
    lease: timedelta
    renew_at: float
    handle: asyncio.Task[Any] | None = None
    released: bool = False


class WorkerError(RuntimeError):
    """The worker stopped because of an error on its claim path."""


class Worker:
    """Runs the tasks of ``app`` on ``queues`` with ``concurrency`` slots.

    ``poll_interval``: seconds an idle slot waits before claiming anyway (the
    safety net for lost notifications; the only mechanism when LISTEN is not
    available, e.g. behind PgBouncer in transaction mode — set ``listen=False``
    there). ``max_batch``: most jobs one claim takes. ``shutdown_grace``:
    seconds running jobs get to finish after a stop request.

    ``prefetch``: jobs a claim may take beyond the free slots, kept in a local
    buffer so the next job starts without a claim round trip and claims come
    in larger batches. ``None`` (default) adapts to the recent average run
    time: the buffer holds at most what the slots run in ``PREFETCH_WINDOW``
    seconds (``concurrency * PREFETCH_WINDOW / average``), capped at
    ``PREFETCH_CAP * concurrency``; none while jobs average ``SHORT_JOB``
    seconds or more, so a slow job never holds buffered claims that another
    worker could run. Buffered jobs' leases are renewed like running ones.
    """

    SHORT_JOB = 0.05
    PREFETCH_WINDOW = 0.1
    PREFETCH_CAP = 20

    def __init__(
        self,
        app: App,
        queues: list[str] | None = None,
        *,
        concurrency: int = 1,
        node_id: str | None = None,
        poll_interval: float = 2.0,
        max_batch: int = 200,
        shutdown_grace: float = 30.0,
        listen: bool = True,
        maintenance: bool = True,
        maintenance_config: MaintenanceConfig | None = None,
        install_signal_handlers: bool = False,
        ack_linger: float = 0.0,
        prefetch: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.app = app
        self.queues = list(queues or app.queues() or [app.default_queue])
        self.concurrency = concurrency
        self.node_id = node_id or default_node_id()
        self.boot_id = uuid.uuid4()
        self.poll_interval = poll_interval
        self.max_batch = max_batch
        self.shutdown_grace = shutdown_grace
        self.listen = listen
        self.maintenance_enabled = maintenance
        self.maintenance_config = maintenance_config
        self.install_signal_handlers = install_signal_handlers
        self.ack_linger = ack_linger
        self.prefetch = prefetch
        self._avg_runtime = 0.0
        self.stats = WorkerStats()
        self.dispatcher: WakeupDispatcher[ClaimedJob] = WakeupDispatcher(self.queues, concurrency)
        self.listener: Listener | None = None
        self.maintenance: Maintenance | None = None
        self.settler: Settler | None = None
        self.ready = asyncio.Event()
        self._client: AsyncClient | None = None
        self._threads: DaemonThreadRunner | None = None
        self._stopping = asyncio.Event()
        self._abort = False
        self._running: dict[int, _Running] = {}  # by id(job)
        self._backlog: list[ClaimedJob] = []
        self._backlog_renew: dict[int, float] = {}  # by id(job)
        self._refills: set[asyncio.Task[Any]] = set()
        self._last_claim = dict.fromkeys(self.queues, time.monotonic())
        self._fatal: BaseException | None = None
        self._signals = 0
        self._queue_lease = {q: self._lease_for_queue(q) for q in self.queues}

    # -- configuration -----------------------------------------------------------
    def _lease_for_queue(self, queue: str) -> timedelta:
        leases = [t.options.lease for t in self.app.tasks.values() if t.options.queue == queue]
        return max(leases, default=timedelta(seconds=30))

    # -- control -----------------------------------------------------------------
    def stop(self) -> None:
        """Request a graceful stop (what the first SIGTERM/SIGINT does)."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: no new claims, %d jobs running",
                     self.node_id, len(self._running))
        self._stopping.set()
        self._wake_all_idle()

    def abort(self) -> None:
        """Stop at once without releasing claims (what a second signal does)."""
        self._abort = True
        self.stop()
        for r in list(self._running.values()):
            if r.handle is not None:
                r.handle.cancel()

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            self.stop()
        else:
            log.warning("second signal: exiting now; claims will expire and be reaped")
            self.abort()

    def _wake_all_idle(self) -> None:
        # idle slots are parked in the dispatcher; an empty wakeup lets them see the stop
        self.dispatcher.wake_all()

    # -- main --------------------------------------------------------------------
    async def run(self) -> None:
        """Run until stopped. Raises ``WorkerError`` when the claim path fails."""
        loop = asyncio.get_running_loop()
        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal)
        client = await AsyncClient.connect(
            self.app.dsn, min_size=1, max_size=self.concurrency + 4)
        self._client = client
        await client.check_compat(SCHEMA_COMPAT)
        released = await client.register_node(
            self.node_id, self.boot_id, {"pid": os.getpid(), "queues": self.queues,
                                         "concurrency": self.concurrency})
        if released:
            log.info("released %d claims of this node's previous incarnation", released)
        self._threads = DaemonThreadRunner(self.concurrency)
        self.settler = Settler(client, linger=self.ack_linger)
        background: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.settler.run(), name="pgbatch-settler"),
            asyncio.create_task(self._lease_keeper(), name="pgbatch-lease-keeper"),
        ]
        if self.listen:
            self.listener = Listener(self.app.dsn, self.queues, self._on_ready,
                                     self.dispatcher.announce_all)
            background.append(asyncio.create_task(self.listener.run(), name="pgbatch-listener"))
            await self._wait_connected(self.listener)
        if self.maintenance_enabled:
            self.maintenance = Maintenance(self.app.dsn, client, self.node_id, self.boot_id,
                                           self.maintenance_config, on_replaced=self.stop,
                                           services=self.app.maintenance_services)
            background.append(asyncio.create_task(self.maintenance.run(),
                                                  name="pgbatch-maintenance"))
        for part in background:
            part.add_done_callback(self._part_done)
        slots = [asyncio.create_task(self._slot(), name=f"pgbatch-slot-{i}")
                 for i in range(self.concurrency)]
        # the first claim of every queue: jobs may already be waiting
        for q in self.queues:
            self.dispatcher.announce(q, 1)
        self.ready.set()
        try:
            await self._stopping.wait()
            await self._drain(slots)
        finally:
            await self._shutdown(background, slots)
            if self.install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        if self._fatal is not None:
            raise WorkerError(f"worker stopped: {self._fatal}") from self._fatal

    def _part_done(self, task: asyncio.Task[Any]) -> None:
        """A background part (settler, lease keeper, listener, maintenance) ended."""
        if task.cancelled() or self._stopping.is_set():
            return
        exc = task.exception()
        if exc is not None:
            log.error("worker part %s failed; stopping the worker", task.get_name(),
                      exc_info=exc)
            self._fatal = exc
            self.stop()

    async def _wait_connected(self, listener: Listener) -> None:
        # jobs announced before LISTEN took effect are found by the initial claim
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.connected.wait(), 10)

    def _on_ready(self, queue: str, ready: int) -> None:
        if not self._stopping.is_set():
            self.dispatcher.announce(queue, ready)

    async def _drain(self, slots: list[asyncio.Task[Any]]) -> None:
        """Wait up to the grace period for running jobs; release what is left."""
        # a slot returns once its current job is finished and settled (queued to ack)
        pending = [s for s in slots if not s.done()]
        if pending and not self._abort:
            await asyncio.wait(pending, timeout=self.shutdown_grace)
        if self._abort:
            return
        if self._refills:
            # a refill claim in flight lands in the buffer, which is released below
            await asyncio.wait(list(self._refills), timeout=10)
        for r in list(self._running.values()):
            await self._release(r)
        for job in self._backlog:
            await self._release(_Running(job, None, None, timedelta(0), 0.0))
        self._backlog.clear()
        self._backlog_renew.clear()

    async def _release(self, r: _Running) -> None:
        r.released = True
        if r.handle is not None:
            r.handle.cancel()
        if r.ctx is not None:
            r.ctx.cancelled.set()
        assert self._client is not None
        try:
            await self._client.release(r.job.id, r.job.claim_token)
            self.stats.released += 1
            log.info("released job %s (not finished within the grace period)", r.job.id)
        except (ClaimLost, JobNotFound):
            pass
        except psycopg.Error as exc:
            log.warning("could not release job %s (%s); its lease will expire", r.job.id, exc)
        self._running.pop(id(r.job), None)

    async def _shutdown(self, background: list[asyncio.Task[Any]],
                        slots: list[asyncio.Task[Any]]) -> None:
        self._stopping.set()
        for s in slots:
            s.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
        if self.settler is not None:
            self.settler.close()
            if not self._abort:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.settler.drain(), 30)
        if self.listener is not None:
            await self.listener.stop()
        if self.maintenance is not None:
            self.maintenance.stop()
        for t in background:
            if t.get_name() != "pgbatch-maintenance":
                t.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        client = self._client
        if client is not None:
            if not self._abort:
                with contextlib.suppress(psycopg.Error):
                    await client.deregister_node(self.node_id, self.boot_id)
            await client.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False)

    # -- slots -------------------------------------------------------------------
    async def _slot(self) -> None:
        while not self._stopping.is_set():
            if self._backlog:
                await self._run_job(self._take_backlog())
                continue
            wake = await self.dispatcher.wait(self._next_poll_in())
            if self._stopping.is_set():
                if wake is not None and wake.job is not None:
                    self._backlog.append(wake.job)
                if wake is not None and wake.queue is not None:
                    self.dispatcher.end_claim(wake.queue, full=False)
                return
            if wake is None:
                # poll: the safety net, at most once per interval per queue and
                # process (a claim for any reason counts); also arms timers for
                # jobs due later
                queue = self._poll_queue()
                if queue is not None:
                    self.dispatcher.begin_claim(queue)
                    await self._claim(queue, poll=True)
            elif wake.job is not None:
                await self._run_job(wake.job)
            elif wake.queue is not None:
                await self._claim(wake.queue)
            # else: an empty wakeup, to re-check the stop flag

    def _pollable(self) -> dict[str, float]:
        """Last claim time of each queue that has no claim in flight."""
        return {q: t for q, t in self._last_claim.items() if not self.dispatcher.is_claiming(q)}

    def _next_poll_in(self) -> float:
        # a queue whose claim is in flight (e.g. retrying while the database is
        # away) is not due for a poll: counting it would wake idle slots every
        # millisecond until that claim returns
        pollable = self._pollable()
        if not pollable:
            return self.poll_interval
        oldest = min(pollable.values())
        return max(oldest + self.poll_interval - time.monotonic(), 0.0) + 0.001

    def _poll_queue(self) -> str | None:
        pollable = self._pollable()
        if not pollable:
            return None
        queue = min(pollable, key=pollable.__getitem__)
        if pollable[queue] + self.poll_interval > time.monotonic():
            return None
        return queue

    async def _claim(self, queue: str, *, poll: bool = False, run_first: bool = True) -> bool:
        """Claim a batch for the free slots; run one job here, hand out the rest.

        With ``run_first=False`` (a background refill of the prefetch buffer)
        every claimed job is handed out or buffered.
        """
        client = self._client
        assert client is not None
        if self.settler is not None:
            # backpressure: do not run ahead of settlement (see Settler.wait_for_room)
            await self.settler.wait_for_room()
            if self._stopping.is_set():
                self.dispatcher.end_claim(queue, full=False)
                return False
        # let slots that are finishing in this same loop iteration park first, so
        # the batch is sized to all the capacity that is free now
        await asyncio.sleep(0)
        self._last_claim[queue] = time.monotonic()
        want = min(int(run_first) + self.dispatcher.idle_count + self._prefetch_room(),
                   self.max_batch)
        if want <= 0:
            self.dispatcher.end_claim(queue, full=False)
            return False
        backoff = 0.05
        while True:
            try:
                jobs = await client.claim(queue, want, lease=self._queue_lease[queue],
                                          worker_id=self.node_id)
                break
            except psycopg.OperationalError as exc:
                if self._stopping.is_set():
                    self.dispatcher.end_claim(queue, full=False)
                    return False
                log.warning("claim on %r failed (%s); retrying in %.2fs", queue, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                log.exception("claim on %r failed; stopping the worker", queue)
                self._fatal = exc
                self.dispatcher.end_claim(queue, full=False)
                self.stop()
                return False
        self.stats.claim_calls += 1
        self.stats.claimed += len(jobs)
        if not jobs:
            self.stats.empty_claims += 1
            self.dispatcher.end_claim(queue, full=False)
            if poll and self.listener is not None:
                await self._arm_next_due(queue)
            return False
        mine, rest = (jobs[0], jobs[1:]) if run_first else (None, jobs)
        renew_at = time.monotonic() + self._queue_lease[queue].total_seconds() / 3
        for job in rest:
            if not self.dispatcher.hand(job):
                self._backlog.append(job)
                self._backlog_renew[id(job)] = renew_at
        self.dispatcher.end_claim(queue, full=len(jobs) == want)
        if mine is None:
            return True
        if self._stopping.is_set():
            self._backlog.append(mine)
            return True
        await self._run_job(mine)
        return True

    def _prefetch_limit(self) -> int:
        if self.prefetch is not None:
            return self.prefetch
        avg = self._avg_runtime
        if self.stats.started == 0 or avg >= self.SHORT_JOB:
            return 0
        cap = self.PREFETCH_CAP * self.concurrency
        if avg * cap <= self.concurrency * self.PREFETCH_WINDOW:
            return cap
        return int(self.concurrency * self.PREFETCH_WINDOW / avg)

    def _prefetch_room(self) -> int:
        return max(self._prefetch_limit() - len(self._backlog), 0)

    def _take_backlog(self) -> ClaimedJob:
        job = self._backlog.pop(0)
        self._backlog_renew.pop(id(job), None)
        self._maybe_refill()
        return job

    def _maybe_refill(self) -> None:
        """Claim the next batch in the background while the buffer still holds work.

        Only when the last claim came back full (it left a token: there is
        probably more) and the buffer is down to half its limit, so claim
        round trips overlap with running jobs instead of alternating with them.
        """
        if self._stopping.is_set():
            return
        limit = self._prefetch_limit()
        if limit == 0 or len(self._backlog) > limit // 2:
            return
        queue = self.dispatcher.take_token()
        if queue is None:
            return
        self.dispatcher.begin_claim(queue)
        task = asyncio.create_task(self._claim(queue, run_first=False), name="pgbatch-refill")
        self._refills.add(task)
        task.add_done_callback(self._refills.discard)

    async def _arm_next_due(self, queue: str) -> None:
        assert self._client is not None
        assert self.listener is not None
        try:
            due = await self._client.next_due([queue])
        except psycopg.Error:
            return
        if due is not None:
            self.listener.arm_due(queue, due.timestamp())

    # -- running jobs ------------------------------------------------------------
    async def _run_job(self, job: ClaimedJob) -> None:
        now = time.monotonic()
        self.stats.started += 1
        if self.stats.first_started_at is None:
            self.stats.first_started_at = time.time()
        payload = job.payload if isinstance(job.payload, dict) else {}
        name = payload.get("task")
        task = self.app.tasks.get(name) if isinstance(name, str) else None
        if task is None:
            await self._nack(job, None, {"type": "UnknownTask",
                                         "message": f"no task named {name!r} is registered "
                                                    f"in this worker"})
            return
        lease = task.options.lease
        ctx = JobContext(job=job, task_name=task.name, worker_id=self.node_id)
        r = _Running(job, task, ctx, lease, now + lease.total_seconds() / 3)
        current = asyncio.current_task()
        r.handle = current
        self._running[id(job)] = r
        try:
            kwargs = payload.get("kwargs") or {}
            if not isinstance(kwargs, dict):
                raise TypeError(f"job kwargs must be a JSON object, got {type(kwargs).__name__}")
            effects = await self._invoke(task, ctx, kwargs)
        except asyncio.CancelledError:
            if r.released or self._abort:
                # shutdown released it (or we are aborting): nothing to settle
                self._running.pop(id(job), None)
                raise
            # cancelled through cancel_job or a lost claim: settle as failed
            self._running.pop(id(job), None)
            uncancel = getattr(current, "uncancel", None)
            if uncancel is not None:
                uncancel()
            if not ctx.claim_lost.is_set():
                await self._nack(job, task, {"type": "Cancelled",
                                             "message": "cancelled while running"})
            return
        except _TransactionalAcked:
            self._running.pop(id(job), None)
            self.stats.succeeded += 1
            return
        except ClaimLost as exc:
            self._running.pop(id(job), None)
            log.warning("lost claim: job %s (attempt %d) could not be acked: %s",
                        job.id, job.attempt, exc)
            if self.settler is not None:
                self.settler.stats.claim_lost += 1
            return
        except Exception as exc:  # noqa: BLE001 - a task failure is a nack, not a crash
            self._running.pop(id(job), None)
            if r.released:
                return
            self.stats.failed += 1
            await self._nack(job, task, _error_info(exc))
            return
        self._running.pop(id(job), None)
        self._avg_runtime = 0.9 * self._avg_runtime + 0.1 * (time.monotonic() - now)
        if r.released:
            return
        self.stats.succeeded += 1
        assert self.settler is not None
        self.settler.ack(job, effects)

    async def _invoke(self, task: Task[Any, Any], ctx: JobContext,
                      kwargs: dict[str, Any]) -> AckEffects | None:
        opts = task.options
        args: tuple[Any, ...] = (ctx,) if opts.pass_context else ()
        if opts.transactional:
            coro = self._invoke_transactional(task, ctx, args, kwargs)
        elif task.is_async:
            coro = task.fn(*args, **kwargs)
        else:
            assert self._threads is not None
            fn = task.fn
            coro = self._threads.run(lambda: fn(*args, **kwargs))
        result = await (asyncio.wait_for(coro, opts.timeout) if opts.timeout else coro)
        return _effects_of(result)

    async def _invoke_transactional(self, task: Task[Any, Any], ctx: JobContext,
                                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the task and its ack in one transaction; raises _TransactionalAcked on commit."""
        job = ctx.job
        if task.is_async:
            aclient = self._client
            assert aclient is not None
            async with aclient.pool.connection() as conn, conn.transaction():
                ctx.conn = conn
                result = await task.fn(*args, **kwargs)
                await aclient.ack(job.id, job.claim_token, _effects_of(result), conn=conn)
        else:
            sclient = self.app.client
            assert self._threads is not None

            def run() -> None:
                with sclient.pool.connection() as conn, conn.transaction():
                    ctx.conn = conn
                    result = task.fn(*args, **kwargs)
                    sclient.ack(job.id, job.claim_token, _effects_of(result), conn=conn)

            await self._threads.run(run)
        raise _TransactionalAcked

    async def _nack(self, job: ClaimedJob, task: Task[Any, Any] | None,
                    error: dict[str, Any]) -> None:
        assert self._client is not None
        opts = task.options if task is not None else None
        try:
            state = await self._client.nack(
                job.id, job.claim_token, error=error,
                backoff_base=opts.backoff_base if opts else timedelta(seconds=1),
                backoff_cap=opts.backoff_cap if opts else timedelta(hours=1))
            log.info("job %s attempt %d failed (%s: %s); now %s", job.id, job.attempt,
                     error.get("type"), error.get("message"), state)
        except ClaimLost as exc:
            log.warning("lost claim: job %s (attempt %d) could not be nacked: %s",
                        job.id, job.attempt, exc)
        except Exception:
            log.exception("nack of job %s failed; its lease will expire", job.id)

    # -- leases ------------------------------------------------------------------
    async def _lease_keeper(self) -> None:
        """Renew leases of long-running jobs every third of their lease."""
        assert self._client is not None
        while True:
            now = time.monotonic()
            due = [r for r in self._running.values() if r.renew_at <= now and not r.released]
            for r in due:
                await self._renew(r)
            for job in [j for j in self._backlog if self._backlog_renew.get(id(j), now) < now]:
                await self._renew_buffered(job)
            nxt = min((r.renew_at for r in self._running.values()), default=now + 1.0)
            nxt = min([nxt, *self._backlog_renew.values()])
            await asyncio.sleep(min(max(nxt - time.monotonic(), 0.01), 1.0))

    async def _renew(self, r: _Running) -> None:
        assert self._client is not None
        r.renew_at = time.monotonic() + r.lease.total_seconds() / 3
        try:
            await self._client.renew_lease(r.job.id, r.job.claim_token, r.lease)
            self.stats.renewals += 1
        except JobCancelled:
            log.info("job %s was cancelled; stopping it", r.job.id)
            if r.ctx is not None:
                r.ctx.cancelled.set()
            if r.task is not None and r.task.is_async and r.handle is not None:
                r.handle.cancel()
            r.renew_at = float("inf")
        except (ClaimLost, JobNotFound):
            self.stats.lost_renewals += 1
            log.warning("lost claim: lease of job %s could not be renewed (reaped)", r.job.id)
            if r.ctx is not None:
                r.ctx.claim_lost.set()
            r.renew_at = float("inf")
        except psycopg.Error as exc:
            log.warning("lease renewal of job %s failed (%s); retrying", r.job.id, exc)
            r.renew_at = time.monotonic() + 0.5


    async def _renew_buffered(self, job: ClaimedJob) -> None:
        assert self._client is not None
        lease = self._queue_lease[job.queue]
        self._backlog_renew[id(job)] = time.monotonic() + lease.total_seconds() / 3
        try:
            await self._client.renew_lease(job.id, job.claim_token, lease)
        except (ClaimLost, JobNotFound, JobCancelled):
            # gone or cancelled before it started: drop it (a cancelled one is settled
            # when its lease is reaped)
            if job in self._backlog:
                self._backlog.remove(job)
            self._backlog_renew.pop(id(job), None)
        except psycopg.Error as exc:
            log.warning("lease renewal of buffered job %s failed (%s)", job.id, exc)


class _TransactionalAcked(Exception):
    """The task and its ack committed together."""


def _effects_of(result: Any) -> AckEffects | None:
    return result if isinstance(result, AckEffects) else None


def _error_info(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "at": datetime.now().astimezone().isoformat(),
    }


def run_worker(app: App, queues: list[str] | None = None, **options: Any) -> None:
    """Run a worker that processes one job at a time until SIGTERM/SIGINT.

    Options are those of ``Worker`` (``poll_interval``, ``node_id``,
    ``shutdown_grace``, …). Signal handlers are installed.
    """
    options.setdefault("install_signal_handlers", True)
    asyncio.run(Worker(app, queues, concurrency=1, **options).run())


def run_worker_concurrent(app: App, queues: list[str] | None = None, concurrency: int = 10,
                          **options: Any) -> None:
    """Run a worker with ``concurrency`` jobs at once until SIGTERM/SIGINT."""
    options.setdefault("install_signal_handlers", True)
    asyncio.run(Worker(app, queues, concurrency=concurrency, **options).run())
