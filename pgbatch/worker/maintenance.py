"""The maintenance loop every worker runs: periodic services, leadership by database time.

Maintenance is a list of ``MaintenanceService`` objects (``services.py``),
each with its own interval and scope. Per-node services (the heartbeat) run
on every worker; leader-only ones (reaping expired leases, announcing due
jobs, compacting counters, sweeping retention, VACUUM: ``queue_services.py``;
purging old batch history: ``batch_services.py``;
and whatever the batch engine, the scheduler or the application register)
run on the node that holds the maintenance leadership lease; the scheduler's tick
(``pgbatch/schedule/service.py``) runs on every node.

Leadership is a heartbeat lease in ``pgbatch.leader`` judged by database
time (``leadership.py``): every tick (``MaintenanceConfig.interval``, at most a
third of the lease) each node calls ``pgbatch.try_lead``; the holder renews,
the others learn who leads. A leader that dies or is stuck stops renewing;
once its lease (``leader_lease``) has run out the next node's call takes it
over, and the new leader runs its leader-only services at once. So while a
leader is frozen, expired claims are reaped within ``leader_lease`` plus a
tick or two. At a clean stop the leader resigns, and another node takes over
at its next tick. No session lock is involved: leadership works through a
transaction pooler.

Each service runs in its own task, at most ``parallel_services`` at a time,
so a slow one (a long VACUUM) holds up neither the others nor the lease
renewal. A service that raises is logged (with its traceback the first time
in a row), counted in ``MaintenanceStats.services[name]`` and retried after
an exponential backoff capped at ``service_backoff_cap``; the loop and the
worker go on. A failure that persists shows as a growing
``consecutive_failures`` and a warning at every doubling of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from pgbatch import _limits
from pgbatch._aio_client import AsyncClient
from pgbatch._errors import InvalidArgument
from pgbatch._reconnect import during_outage
from pgbatch.schedule.service import schedule_services
from pgbatch.worker.batch_services import BatchServices
from pgbatch.worker.leadership import Leadership
from pgbatch.worker.queue_services import QueueServices
from pgbatch.worker.services import (
    LEADER,
    MaintenanceContext,
    MaintenanceService,
    ServiceStats,
    backoff_delay,
)

log = logging.getLogger("pgbatch.maintenance")

#: Seconds a stopping loop lets running services finish before cancelling them.
STOP_GRACE = 2.0


@dataclass
class MaintenanceConfig:
    """What the maintenance loop does and how often.

    ``interval``: seconds between ticks. Each tick renews (or asks for) the
    leadership lease; it is also the interval of the heartbeat, of reaping
    and of due announcements, so a lease expiry is noticed within about one
    interval. The lease is renewed at least three times per lease even when
    ``interval`` is longer.

    ``leader_lease``: seconds the leadership lease lasts without renewal (1
    to 3600). A leader that stops renewing (crash, SIGSTOP, hung loop,
    partition) stalls leader-only work for at most this long plus a tick:
    shorter means faster recovery, but a lease shorter than a leader's
    longest pause (GC, a slow database) makes leadership flap.

    ``retention_done`` / ``retention_dead``: archived records older than these
    are swept (every ``sweep_every`` intervals); each is 0 to
    ``pgbatch._limits.MAX_RETENTION`` (``InvalidArgument`` otherwise). ``compact_every``: intervals
    between counter compactions. ``reap_limit``: claims reaped per call
    (repeated while full).

    ``vacuum_dead_tuples``: the leader runs ``VACUUM`` on ``pgbatch.job`` once
    the statistics count at least this many dead row versions there (every
    job leaves two), checking every ``vacuum_min_seconds`` (at least every
    interval). ``0`` leaves it to autovacuum alone. The worker's role must own
    the table, or have ``MAINTAIN`` on it (PostgreSQL 17+); otherwise the
    leader logs a warning once and leaves it to autovacuum.

    ``batch_retention``: terminal batch executions (with their steps,
    contexts and events) that ended longer ago than this are purged, every
    ``sweep_every`` intervals, ``batch_purge_size`` per call; 0 to
    ``pgbatch._limits.MAX_RETENTION``, or None to keep them
    (``batch_services.py``).

    ``batch_resume_interval``: seconds between two runs of the timed-resume
    sweep on this node (every node runs it; a PAUSED execution whose
    ``resume_at`` came is resumed within about this long, exactly once however
    many nodes sweep); ``batch_resume_size`` executions per call (repeated
    while full).

    ``service_backoff_cap``: the longest wait before retrying a failing
    service. ``parallel_services``: services that may run at once (each run
    takes a pooled connection while it runs).
    """

    interval: float = 1.0
    leader_lease: float = 5.0
    retention_done: timedelta = timedelta(days=1)
    retention_dead: timedelta = timedelta(days=7)
    batch_retention: timedelta | None = timedelta(days=30)
    batch_purge_size: int = 1000
    batch_resume_interval: float = 1.0
    batch_resume_size: int = 100
    sweep_every: int = 60
    compact_every: int = 10
    reap_limit: int = 1000
    vacuum_dead_tuples: int = 100_000
    vacuum_min_seconds: float = 5.0
    service_backoff_cap: float = 60.0
    parallel_services: int = 2

    def __post_init__(self) -> None:
        if not math.isfinite(self.interval) or self.interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {self.interval}")
        if not math.isfinite(self.leader_lease) or not 1.0 <= self.leader_lease <= 3600.0:
            raise ValueError(f"leader_lease must be 1 to 3600 seconds, got {self.leader_lease}")
        if self.sweep_every < 1 or self.compact_every < 1 or self.reap_limit < 1:
            raise ValueError("sweep_every, compact_every and reap_limit must be at least 1")
        if self.parallel_services < 1:
            raise ValueError(f"parallel_services must be at least 1, got {self.parallel_services}")
        if not math.isfinite(self.batch_resume_interval) or self.batch_resume_interval <= 0:
            raise ValueError("batch_resume_interval must be a positive number of seconds, got "
                             f"{self.batch_resume_interval}")
        if not 1 <= self.batch_resume_size <= 10_000:
            raise ValueError(f"batch_resume_size must be 1 to 10000, got {self.batch_resume_size}")
        if not 1 <= self.batch_purge_size <= 100_000:
            raise ValueError(f"batch_purge_size must be 1 to 100000, got {self.batch_purge_size}")
        if self.batch_retention is not None and \
                not timedelta(0) <= self.batch_retention <= _limits.MAX_RETENTION:
            raise InvalidArgument(f"invalid batch_retention: {self.batch_retention}, must be 0 to "
                                  f"{_limits.MAX_RETENTION} (purge_batch_history's limit)")
        for what, age in (("retention_done", self.retention_done),
                          ("retention_dead", self.retention_dead)):
            if not timedelta(0) <= age <= _limits.MAX_RETENTION:
                raise InvalidArgument(f"invalid {what}: {age}, must be 0 to {_limits.MAX_RETENTION}"
                                      " (sweep_retention's limit)")

    @property
    def renew_every(self) -> float:
        """Seconds between lease renewals (ticks): ``interval``, at most a third of the lease."""
        return min(self.interval, self.leader_lease / 3.0)


@dataclass
class MaintenanceStats:
    """Counters of the maintenance loop.

    ``ticks``: lease renewals asked for; ``leader_ticks``: those after which
    this node led. ``term``: the term of the lease this node holds (None when
    it does not lead). ``services``: per-service counters, by name.
    """

    ticks: int = 0
    leader_ticks: int = 0
    reaped: int = 0
    announced: int = 0
    swept: int = 0
    batch_purged: int = 0
    batch_resumed: int = 0
    vacuums: int = 0
    became_leader: int = 0
    lost_leadership: int = 0
    renew_failures: int = 0
    replaced: bool = False
    term: int | None = None
    services: dict[str, ServiceStats] = field(default_factory=dict)


@dataclass
class _ServiceState:
    service: MaintenanceService
    stats: ServiceStats
    context: MaintenanceContext
    next_due: float = 0.0
    term: int | None = None  # the leadership term of its last start (leader-only services)
    task: asyncio.Task[None] | None = None


class Maintenance:
    """The maintenance loop of one worker node: leadership lease plus periodic services."""

    def __init__(self, conninfo: str, client: AsyncClient, node_id: str, boot_id: UUID,
                 config: MaintenanceConfig | None = None,
                 on_replaced: Callable[[], None] | None = None,
                 services: Iterable[MaintenanceService] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conninfo = conninfo
        self.client = client
        self.node_id = node_id
        self.boot_id = boot_id
        self.config = config or MaintenanceConfig()
        self.on_replaced = on_replaced
        self.clock = clock
        self.stats = MaintenanceStats()
        self.leadership = Leadership(client, node_id, boot_id, self.config.leader_lease,
                                     clock=clock)
        self.queue_services = QueueServices(self.config, self.stats, on_replaced)
        self._services: dict[str, _ServiceState] = {}
        self._slots = asyncio.Semaphore(self.config.parallel_services)
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._renew_failures = 0
        self.batch_services = BatchServices(self.config, self.stats)
        for service in [*self.queue_services.services(), *self.batch_services.services(),
                        *schedule_services(),
                        *services]:
            self.register(service)

    # -- registry -----------------------------------------------------------------
    def register(self, service: MaintenanceService) -> None:
        """Add a service; it runs from the next tick on. Names must be unique."""
        if service.name in self._services:
            raise ValueError(f"a maintenance service named {service.name!r} is already registered")
        context = MaintenanceContext(self.client, self.conninfo, self.node_id, self.boot_id,
                                     self.leadership, self.clock, service)
        state = _ServiceState(service, ServiceStats(), context, next_due=self.clock())
        self._services[service.name] = state
        self.stats.services[service.name] = state.stats
        self._changed.set()

    @property
    def services(self) -> list[MaintenanceService]:
        """The registered services, built-in ones first."""
        return [s.service for s in self._services.values()]

    @property
    def is_leader(self) -> bool:
        """Whether this node holds a valid maintenance leadership lease (by its own clock)."""
        return self.leadership.is_leader()

    # -- the loop -----------------------------------------------------------------
    async def run(self) -> None:
        """Tick until ``stop()``: renew the lease, start due services; resign at the end."""
        next_tick = self.clock()
        try:
            while not self._stop.is_set():
                if self.clock() >= next_tick:
                    next_tick = self.clock() + self.config.renew_every
                    await self._renew()
                self._start_due()
                await self._wait(next_tick)
        finally:
            await self._finish()

    async def tick(self) -> None:
        """One pass in the caller's task: renew the lease, then run each due service in turn."""
        await self._renew()
        for state in list(self._services.values()):
            if self._due(state, self.clock()):
                await self._run_service(state)

    async def run_now(self, name: str) -> None:
        """Run the service ``name`` once now, in the caller's task (leader-only ones only
        while this node leads); its failure is counted and logged as in the loop."""
        state = self._services.get(name)
        if state is None:
            raise KeyError(f"no maintenance service named {name!r}")
        await self._run_service(state)

    def stop(self) -> None:
        """End the loop: running services get ``STOP_GRACE`` seconds; leadership is resigned."""
        self._stop.set()

    async def _renew(self) -> None:
        self.stats.ticks += 1
        try:
            await asyncio.wait_for(self.leadership.renew(), timeout=self.config.leader_lease)
        except Exception as exc:  # noqa: BLE001 - logged; the lease lapses locally in time
            self.stats.renew_failures += 1
            self._renew_failures += 1
            if _worth_logging(self._renew_failures):
                log.log(self._level(exc), "maintenance leadership renewal failed (%d in a row): %s",
                        self._renew_failures, exc or type(exc).__name__)
        else:
            self._renew_failures = 0
        lead = self.leadership
        if lead.is_leader():
            self.stats.leader_ticks += 1
        self.stats.became_leader = lead.became_leader
        self.stats.lost_leadership = lead.lost_leadership
        self.stats.term = lead.term

    def _due(self, state: _ServiceState, now: float) -> bool:
        if state.task is not None and not state.task.done():
            return False
        if state.service.scope == LEADER:
            if not self.leadership.is_leader(now):
                return False
            if state.term != self.leadership.term:
                return True  # a new term: the new leader runs its services at once
        return now >= state.next_due

    def _start_due(self) -> None:
        now = self.clock()
        for state in self._services.values():
            if self._due(state, now):
                state.task = asyncio.create_task(self._run_service(state),
                                                 name=f"pgbatch-maintenance-{state.service.name}")

    async def _run_service(self, state: _ServiceState) -> None:
        service, stats = state.service, state.stats
        async with self._slots:
            if service.scope == LEADER:
                if not self.leadership.check_lapsed():
                    return  # lost the lease while waiting for a slot: due again when leading
                state.term = self.leadership.term
            started = self.clock()
            try:
                await service.run(state.context)
            except Exception as exc:  # noqa: BLE001 - one service never stops the others
                self._failed(state, exc, started)
            else:
                if stats.consecutive_failures:
                    log.info("maintenance service %s recovered after %d failures",
                             service.name, stats.consecutive_failures)
                stats.runs += 1
                stats.consecutive_failures = 0
                stats.last_duration = self.clock() - started
                state.next_due = max(started + service.interval, self.clock())
            finally:
                self._changed.set()

    def _failed(self, state: _ServiceState, exc: Exception, started: float) -> None:
        service, stats = state.service, state.stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = f"{type(exc).__name__}: {exc}"
        stats.last_duration = self.clock() - started
        outage = self._level(exc) < logging.WARNING
        # an outage is no reason to back off: the service runs again one interval
        # after the database is back, not after a backoff grown during the outage
        delay = service.interval if outage else backoff_delay(
            service.interval, stats.consecutive_failures, self.config.service_backoff_cap)
        state.next_due = self.clock() + delay
        if stats.consecutive_failures == 1:
            log.log(self._level(exc), "maintenance service %s failed; retrying in %.1fs",
                    service.name, delay, exc_info=None if outage else exc)
        elif _worth_logging(stats.consecutive_failures):
            log.log(self._level(exc),
                    "maintenance service %s failed %d times in a row (%s); retrying in %.1fs",
                    service.name, stats.consecutive_failures, stats.last_error, delay)

    def _level(self, exc: BaseException) -> int:
        """INFO for a failure that is part of an outage (logged once by the watch), else WARNING."""
        return logging.INFO if during_outage(self.client.guard.watch, exc) else logging.WARNING

    async def _wait(self, next_tick: float) -> None:
        """Sleep until the next tick, the next due service, a finished service or ``stop()``."""
        wake = next_tick
        now = self.clock()
        for state in self._services.values():
            if state.task is not None and not state.task.done():
                continue
            if state.service.scope != LEADER or self.leadership.is_leader(now):
                wake = min(wake, state.next_due)
        self._changed.clear()
        timeout = max(0.0, wake - self.clock())
        stop = asyncio.ensure_future(self._stop.wait())
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait([stop, changed], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            changed.cancel()

    async def _finish(self) -> None:
        running = [s.task for s in self._services.values()
                   if s.task is not None and not s.task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.leadership.resign(), timeout=STOP_GRACE)
        self.stats.term = None


def _worth_logging(consecutive: int) -> bool:
    """Log the 1st, 2nd, 4th, 8th, ... failure of a streak."""
    return consecutive & (consecutive - 1) == 0
