"""The worker: composes the parts that claim, run, keep leases and settle.

One ``Worker`` is one process's worth of slots (``concurrency``). It owns no
logic of its own beyond starting, stopping and wiring its parts, each in its
own module:

- ``Claimer`` (``claimer``): each slot's next job; the prefetch buffer and
  the dispatcher protocol.
- ``Runner`` (``runner``): resolves the job's handler by kind (the executor
  seam, ``executor``), runs it, classifies the outcome.
- ``LeaseKeeper`` (``lease_keeper``): renews every claim held, buffered or
  running; learns of cancellations and lost claims.
- ``Settler`` (``settler``): every settlement (acks in batches; nacks,
  dead-letters, releases, acks inside a job's own transaction).
- ``WakeupDispatcher`` and ``Listener``: wakeups; ``Maintenance``: heartbeat
  and, on the leader, the shared periodic work.

A slot is a loop: ``claimer.next()`` then ``runner.run(claim)``.

Shutdown (SIGTERM/SIGINT, or ``stop()``): stop claiming, tell running jobs
(``JobContext.stop_requested``), let them finish within ``shutdown_grace``
seconds, settle them, and release the rest back to pending without
consuming an attempt (``JobContext.released``: a hand-off, not a cancel). A
second signal ends the worker at once; its claims then expire and are reaped.
On the claim path, a dropped connection is retried with backoff; any other
error ends the worker (``WorkerError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from datetime import timedelta
from typing import Any

import psycopg

from pgbatch import _limits
from pgbatch._aio_client import AsyncClient
from pgbatch._app import App
from pgbatch._install import SCHEMA_COMPAT
from pgbatch._registry import task_entry
from pgbatch.schedule.in_code import register_schedules
from pgbatch.worker.claim import Claim
from pgbatch.worker.claimer import Claimer
from pgbatch.worker.connections import WorkerConnections
from pgbatch.worker.context import ClaimServices
from pgbatch.worker.dispatcher import WakeupDispatcher
from pgbatch.worker.executor import DEFAULT_KIND, Executor
from pgbatch.worker.lease_keeper import LeaseKeeper
from pgbatch.worker.listener import Listener
from pgbatch.worker.maintenance import Maintenance, MaintenanceConfig
from pgbatch.worker.prefetch import PrefetchPolicy
from pgbatch.worker.runner import Runner
from pgbatch.worker.settler import Settler
from pgbatch.worker.signals import ShutdownSignals
from pgbatch.worker.stats import WorkerError, WorkerStats, default_node_id
from pgbatch.worker.tasks import TaskExecutor
from pgbatch.worker.threads import DaemonThreadRunner

log = logging.getLogger("pgbatch.worker")

#: The lease of claims on a queue no executor has an opinion about.
DEFAULT_CLAIM_LEASE = _limits.DEFAULT_LEASE


class Worker:
    """Runs the jobs of ``app`` on ``queues`` with ``concurrency`` slots.

    ``queues`` defaults to the queues of the App's tasks and executors.
    ``poll_interval``: seconds an idle slot waits before claiming anyway (the
    safety net for lost notifications; the only mechanism when LISTEN is not
    available: ``listen=False``, an App in transaction pooler mode without a
    ``listen_dsn``, or a listener whose start-up probe found that
    notifications do not arrive, e.g. through PgBouncer in transaction mode).
    ``max_batch``: most jobs one claim takes. ``shutdown_grace``:
    seconds running jobs get to finish after a stop request.

    ``install_signal_handlers``: handle SIGTERM and SIGINT as the CLI does
    (the first stops gracefully, a second exits at once with status 143 for
    SIGTERM, 130 for SIGINT, by raising ``SystemExit``). The default
    (``None``) installs them when ``run()`` runs on the main thread, so
    ``asyncio.run(Worker(app).run())`` in a script shuts down gracefully on
    Ctrl-C; ``False`` leaves signals alone (call ``stop()`` yourself).

    ``prefetch``: jobs a claim may take beyond the free slots, kept in a local
    buffer so the next job starts without a claim round trip. ``None``
    (default) adapts to the recent average run time (``PrefetchPolicy``): at
    most what the slots run in ``PREFETCH_WINDOW`` seconds, capped at
    ``PREFETCH_CAP * concurrency``, none while jobs average ``SHORT_JOB``
    seconds or more. Buffered jobs' leases are renewed like running ones.
    """

    SHORT_JOB = PrefetchPolicy.SHORT_JOB
    PREFETCH_WINDOW = PrefetchPolicy.WINDOW
    PREFETCH_CAP = PrefetchPolicy.CAP

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
        install_signal_handlers: bool | None = None,
        ack_linger: float = 0.0,
        prefetch: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.app = app
        self.executors: dict[str, Executor] = {DEFAULT_KIND: TaskExecutor(app),
                                               **app.executors}
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
        self.ack_linger = ack_linger
        self.prefetch = PrefetchPolicy(concurrency, prefetch)
        self.dispatcher: WakeupDispatcher[Claim] = WakeupDispatcher(self.queues, concurrency)
        self.ready = asyncio.Event()
        self.listener: Listener | None = None
        self.maintenance: Maintenance | None = None
        self.settler: Settler | None = None
        self.lease_keeper: LeaseKeeper | None = None
        self.claimer: Claimer | None = None
        self.runner: Runner | None = None
        self._connections: WorkerConnections | None = None
        self._threads: DaemonThreadRunner | None = None
        self._stopping = asyncio.Event()
        self._abort = False
        self._fatal: BaseException | None = None
        self.signals = ShutdownSignals(install_signal_handlers, self.stop, self.abort)

    def listen_conninfo(self) -> str | None:
        """Where the listener connects, or None when this worker polls only.

        ``listen=False``: nowhere. Else the App's ``listen_dsn`` when set, else
        its ``dsn`` unless the App is in transaction pooler mode: a worker never
        LISTENs through a transaction pooler it was told about (it says so once,
        and polls every ``poll_interval`` seconds).
        """
        if not self.listen:
            return None
        listen_dsn = self.app.listen_dsn
        if listen_dsn is not None:
            return listen_dsn
        if self.app.pooler == "transaction":
            log.warning("pooler mode %r and no listen_dsn: not listening through the pooler; "
                        "this worker polls every %.1fs (give a direct listen_dsn, "
                        "--listen-dsn or $PGBATCH_LISTEN_DSN, for prompt wakeups)",
                        self.app.pooler, self.poll_interval)
            return None
        return self.app.dsn

    def claim_lease(self, queue: str) -> timedelta:
        """The lease of this worker's claims on ``queue``: the largest any executor needs."""
        leases = [lease for ex in self.executors.values()
                  if (lease := ex.claim_lease(queue)) is not None]
        return max(leases, default=DEFAULT_CLAIM_LEASE)

    @property
    def stats(self) -> WorkerStats:
        """The counters of the claimer, runner, lease keeper and settler, now."""
        s = WorkerStats()
        if self.claimer is not None:
            c = self.claimer.stats
            s.claim_calls, s.claimed, s.empty_claims = c.claim_calls, c.claimed, c.empty_claims
        if self.runner is not None:
            r = self.runner.stats
            s.started, s.succeeded, s.failed = r.started, r.succeeded, r.failed
            s.first_started_at = r.first_started_at
        if self.lease_keeper is not None:
            s.renewals = self.lease_keeper.stats.renewals
            s.lost_renewals = self.lease_keeper.stats.lost_renewals
        if self.settler is not None:
            s.released = self.settler.stats.released
        return s

    # -- control -----------------------------------------------------------------
    def stop(self) -> None:
        """Request a graceful stop (what the first SIGTERM/SIGINT does)."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: no new claims, %d jobs running",
                     self.node_id, self.runner.running if self.runner is not None else 0)
        self._stopping.set()
        if self.claimer is not None:
            self.claimer.stop()
        if self.runner is not None:
            self.runner.request_stop()
        # idle slots are parked in the dispatcher; an empty wakeup lets them see the stop
        self.dispatcher.wake_all()

    def abort(self) -> None:
        """Stop at once without releasing claims (what a second signal does)."""
        self._abort = True
        self.stop()
        if self.runner is not None:
            self.runner.abort()

    def _fail(self, exc: BaseException) -> None:
        self._fatal = exc
        self.stop()

    def _on_ready(self, queue: str, ready: int) -> None:
        if not self._stopping.is_set():
            self.dispatcher.announce(queue, ready)

    # -- main --------------------------------------------------------------------
    async def run(self) -> None:
        """Run until stopped. Raises ``WorkerError`` when the claim path fails.

        With signal handlers installed (see ``install_signal_handlers``), a
        second signal raises ``SystemExit(143)`` (SIGTERM) or ``SystemExit(130)``
        (SIGINT) once the worker is down.
        """
        self.signals.install()
        background: list[asyncio.Task[Any]] = []
        slots: list[asyncio.Task[Any]] = []
        try:
            await self._start(background)
            slots = [asyncio.create_task(self._slot(), name=f"pgbatch-slot-{i}")
                     for i in range(self.concurrency)]
            # the first claim of every queue: jobs may already be waiting
            for q in self.queues:
                self.dispatcher.announce(q, 1)
            self.ready.set()
            await self._stopping.wait()
            await self._drain(slots)
        finally:
            await self._shutdown(background, slots)
            self.signals.remove()
        if self._fatal is not None:
            raise WorkerError(f"worker stopped: {self._fatal}") from self._fatal
        if self.signals.exit_signal is not None:  # the shell's convention: 128 + its number
            raise SystemExit(128 + self.signals.exit_signal)

    async def _start(self, background: list[asyncio.Task[Any]]) -> None:
        """Connect, register, build the parts and start the background ones."""
        connections = self._connections = WorkerConnections(self.app.dsn, self.concurrency,
                                                            pooler=self.app.pooler)
        client = await connections.open()
        await client.check_compat(SCHEMA_COMPAT)
        released = await client.register_node(
            self.node_id, self.boot_id, {"pid": os.getpid(), "queues": self.queues,
                                         "concurrency": self.concurrency})
        if released:
            log.info("released %d claims of this node's previous incarnation", released)
        await self._register_tasks(client)
        await register_schedules(client, self.app.schedules, self.app.executors.values())
        threads = self._threads = DaemonThreadRunner(self.concurrency)
        settler = self.settler = Settler(client, linger=self.ack_linger,
                                         sync_client=connections.sync_client)
        keeper = self.lease_keeper = LeaseKeeper(client)
        self.runner = Runner(self.executors, worker_id=self.node_id,
                             services=ClaimServices(client, connections.sync_client, settler),
                             settler=settler, lease_keeper=keeper, threads=threads,
                             prefetch=self.prefetch)
        listen_dsn = self.listen_conninfo()
        if listen_dsn is not None:
            self.listener = Listener(listen_dsn, self.queues, self._on_ready,
                                     self.dispatcher.announce_all, client=client)
        self.claimer = Claimer(
            client, self.dispatcher, queues=self.queues,
            leases={q: self.claim_lease(q) for q in self.queues}, worker_id=self.node_id,
            settler=settler, lease_keeper=keeper, prefetch=self.prefetch,
            max_batch=self.max_batch, poll_interval=self.poll_interval, on_fatal=self._fail,
            arm_due=self.listener.arm_due if self.listener is not None else None)
        if self._stopping.is_set():  # stop() came before the parts existed
            self.claimer.stop()
            self.runner.request_stop()
        background += [
            asyncio.create_task(settler.run(), name="pgbatch-settler"),
            asyncio.create_task(keeper.run(), name="pgbatch-lease-keeper"),
        ]
        if self.listener is not None:
            background.append(asyncio.create_task(self.listener.run(), name="pgbatch-listener"))
            # jobs announced before LISTEN took effect are found by the initial claim
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.listener.done.wait(), 10)
        if self.maintenance_enabled:
            self.maintenance = Maintenance(self.app.dsn, client, self.node_id, self.boot_id,
                                           self.maintenance_config, on_replaced=self.stop,
                                           services=self.app.maintenance_services)
            background.append(asyncio.create_task(self.maintenance.run(),
                                                  name="pgbatch-maintenance"))
        for part in background:
            part.add_done_callback(self._part_done)

    async def _register_tasks(self, client: AsyncClient) -> None:
        """Record the App's tasks' options in the task registry (read by ``enqueue_task``)."""
        entries = [task_entry(t) for t in self.app.tasks.values()]
        if not entries:
            return
        try:
            await client.register_tasks(self.node_id, entries)
        except (psycopg.errors.UndefinedFunction, psycopg.errors.InsufficientPrivilege) as exc:
            log.warning("could not record this worker's tasks in the task registry (%s); "
                        "enqueues by task name from the CLI or SQL will not get their "
                        "options", exc.diag.message_primary or exc)

    def _part_done(self, task: asyncio.Task[Any]) -> None:
        """A background part (settler, lease keeper, listener, maintenance) ended."""
        if task.cancelled() or self._stopping.is_set():
            return
        exc = task.exception()
        if exc is not None:
            log.error("worker part %s failed; stopping the worker", task.get_name(),
                      exc_info=exc)
            self._fail(exc)

    async def _slot(self) -> None:
        claimer, runner = self.claimer, self.runner
        assert claimer is not None
        assert runner is not None
        while (claim := await claimer.next()) is not None:
            await runner.run(claim)

    async def _drain(self, slots: list[asyncio.Task[Any]]) -> None:
        """Wait up to the grace period for running jobs; release what is left."""
        # a slot returns once its current job is finished and settled (queued to ack)
        pending = [s for s in slots if not s.done()]
        if pending and not self._abort:
            await asyncio.wait(pending, timeout=self.shutdown_grace)
        if self._abort:
            return
        if self.runner is not None:
            await self.runner.release_all()
        if self.claimer is not None:
            await self.claimer.release_buffer()

    async def _shutdown(self, background: list[asyncio.Task[Any]],
                        slots: list[asyncio.Task[Any]]) -> None:
        self._stopping.set()
        if self.claimer is not None:
            self.claimer.stop()
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
        connections = self._connections
        if connections is not None and connections.is_open:
            if not self._abort:
                with contextlib.suppress(psycopg.Error):
                    await connections.client.deregister_node(self.node_id, self.boot_id)
            await connections.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False)


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
