"""The application object: a task registry plus the pools that enqueue.

    app = pgbatch.App("postgresql://...")

    @app.task(queue="emails", max_attempts=5)
    def send_email(to: str) -> None: ...

    send_email.defer(to="a@example.com")                 # own transaction
    send_email.enqueue({"to": "b@example.com"}, conn=c)  # inside the caller's transaction

A task's job payload is ``{"task": <name>, "kwargs": {...}}``. A task function
may be sync (run on a worker thread) or ``async`` (run on the worker's event
loop). It may return ``AckEffects`` (follow-up jobs, kv writes) that are
applied atomically with its ack. With ``pass_context=True`` it receives a
``JobContext`` first; with ``transactional=True`` that context carries
``conn``, a connection inside an open transaction in which the worker also
acks the job: the task's own writes commit together with the ack, or not at
all (e.g. when the claim was lost).

Class-based handlers subclass ``Handler`` and implement exactly one of
``process`` and ``process_with_effects`` (each defaults to the other).

Tasks are one kind of job. Another part (the batch engine) registers an
executor for its own kind with ``register_executor``; the App's workers then
run those jobs too (see ``pgbatch.worker.executor``).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from pgbatch import _limits
from pgbatch._aio_client import AsyncClient
from pgbatch._client import Client
from pgbatch._dsn import resolve_dsn
from pgbatch._errors import InvalidArgument
from pgbatch._pooler import PoolerMode, connection_kwargs, resolve_listen_dsn, resolve_pooler
from pgbatch._reconnect import AsyncConnectionPoolGuard, ConnectionPoolGuard
from pgbatch._task import Handler, Task, TaskOptions, _handler_entry
from pgbatch._task_names import default_task_name

if TYPE_CHECKING:
    from uuid import UUID

    from pgbatch._types import JobInfo, Json
    from pgbatch.batch.definition import Job
    from pgbatch.schedule.definition import ScheduleDefinition
    from pgbatch.schedule.in_code import CodeSchedule
    from pgbatch.schedule.types import OverlapPolicy
    from pgbatch.worker.executor import Executor

if TYPE_CHECKING:
    from pgbatch.worker.services import MaintenanceService, ServiceFunction, ServiceScope

P = ParamSpec("P")
R = TypeVar("R")
P2 = ParamSpec("P2")
R2 = TypeVar("R2")
SF = TypeVar("SF", bound="ServiceFunction")


class _TaskDecorator(Protocol):
    """What ``App.task(...)`` returns when called with options only."""

    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class App:
    """Task registry and connection pools of one application.

    ``dsn``: libpq connection string or URI; default ``$PGBATCH_DSN``, else the
    embedded PostgreSQL in the user's data directory. Pools open lazily, so
    defining an ``App`` at import time costs nothing.

    ``pooler``: ``"transaction"`` when ``dsn`` goes through a transaction
    pooler (PgBouncer ``pool_mode = transaction``): no connection of the App
    or its workers prepares statements, and workers do not LISTEN through the
    pooler. Default ``$PGBATCH_POOLER``, else ``"none"``. ``listen_dsn``: a
    direct connection string for the workers' LISTEN connection (wakeups
    while everything else goes through the pooler); default
    ``$PGBATCH_LISTEN_DSN``. See README "Through PgBouncer".
    """

    def __init__(self, dsn: str | None = None, *, pool_size: int = 10,
                 default_queue: str = "default", pooler: str | None = None,
                 listen_dsn: str | None = None) -> None:
        self._dsn = dsn
        self._pooler = None if pooler is None else resolve_pooler(pooler)
        self._listen_dsn = listen_dsn
        self.pool_size = pool_size
        self.default_queue = default_queue
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: Maintenance services every worker of this App runs besides the built-in ones.
        self.maintenance_services: list[MaintenanceService] = []
        self.executors: dict[str, Executor] = {}
        #: Schedules defined in code (``schedule``), registered by every worker at start.
        self.schedules: dict[str, CodeSchedule] = {}
        self._client: Client | None = None
        self._aclient: AsyncClient | None = None
        self._lock = threading.Lock()

    @property
    def dsn(self) -> str:
        """The resolved connection string."""
        if self._dsn is None or not self._dsn:
            self._dsn = resolve_dsn(self._dsn)
        return self._dsn

    @property
    def pooler(self) -> PoolerMode:
        """The pooler mode: the ``pooler`` argument, else ``$PGBATCH_POOLER``, else ``"none"``."""
        return self._pooler if self._pooler is not None else resolve_pooler(None)

    @property
    def listen_dsn(self) -> str | None:
        """The workers' direct LISTEN DSN: ``listen_dsn``, else ``$PGBATCH_LISTEN_DSN``."""
        return resolve_listen_dsn(self._listen_dsn)

    # -- registry --------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], *, name: str | None = None,
             queue: str | None = None, priority: int = 0,
             max_attempts: int = _limits.DEFAULT_MAX_ATTEMPTS,
             lease: float | timedelta = _limits.DEFAULT_LEASE, timeout: float | None = None,
             backoff_base: float | timedelta = 1.0, backoff_cap: float | timedelta = 3600.0,
             pass_context: bool = False, transactional: bool = False,
             retry_on: ExceptionTypes | None = None,
             dead_on: ExceptionTypes | None = None) -> Task[P, R]: ...

    @overload
    def task(self, fn: None = None, *, name: str | None = None,
             queue: str | None = None, priority: int = 0,
             max_attempts: int = _limits.DEFAULT_MAX_ATTEMPTS,
             lease: float | timedelta = _limits.DEFAULT_LEASE, timeout: float | None = None,
             backoff_base: float | timedelta = 1.0, backoff_cap: float | timedelta = 3600.0,
             pass_context: bool = False, transactional: bool = False,
             retry_on: ExceptionTypes | None = None,
             dead_on: ExceptionTypes | None = None) -> _TaskDecorator: ...

    def task(self, fn: Callable[P, R] | None = None, *, name: str | None = None,
             queue: str | None = None, priority: int = 0,
             max_attempts: int = _limits.DEFAULT_MAX_ATTEMPTS,
             lease: float | timedelta = _limits.DEFAULT_LEASE, timeout: float | None = None,
             backoff_base: float | timedelta = 1.0, backoff_cap: float | timedelta = 3600.0,
             pass_context: bool = False, transactional: bool = False,
             retry_on: ExceptionTypes | None = None, dead_on: ExceptionTypes | None = None,
             ) -> Task[P, R] | _TaskDecorator:
        """Register a function (or a ``Handler`` subclass) as a task.

        ``lease``: seconds a claim lasts without renewal; the worker renews it
        every third of that while the job runs, so a job may run longer, but a
        worker that stops renewing (crash, freeze) loses the job to another
        after this long. ``timeout``: seconds after which the attempt fails
        with ``TaskTimeout`` (retried like any failure): an async task is
        cancelled then; a sync task cannot be interrupted, so its thread runs on
        and the worker holds its slot and claim until it returns, then fails
        the attempt (no second attempt runs while the first does; give long
        sync work an async wrapper or a subprocess for a hard limit).
        ``backoff_base``/``backoff_cap``: retry delay ``base*2^(attempt-1)``
        capped, with jitter. ``transactional`` implies ``pass_context``.
        ``retry_on``: an exception class (or tuple): only those are retried,
        any other exception makes the job dead at once; ``dead_on``: exception
        classes that make the job dead at once (checked first). A task may also
        raise ``pgbatch.Abort`` (dead now) or ``pgbatch.Retry(at=..., delay=...)``.
        Options outside the SQL API's limits (``pgbatch._limits``: a lease of
        ``MIN_LEASE`` to ``MAX_LEASE``, ``max_attempts`` at least 1, an SQL
        integer priority, a valid queue name, ...) raise ``InvalidArgument``
        or ``InvalidQueueName`` here, when the task is declared.
        """
        def register(target: Callable[P2, R2]) -> Task[P2, R2]:
            opts = TaskOptions(
                queue=queue or self.default_queue, priority=priority, max_attempts=max_attempts,
                lease=_td(lease), timeout=timeout, backoff_base=_td(backoff_base),
                backoff_cap=_td(backoff_cap), pass_context=pass_context or transactional,
                transactional=transactional,
                retry_on=None if retry_on is None else _types(retry_on),
                dead_on=() if dead_on is None else _types(dead_on),
            )
            func: Callable[..., Any]
            if isinstance(target, type) and issubclass(target, Handler):
                func = _handler_entry(target())
                opts = TaskOptions(**{**opts.__dict__, "pass_context": True})
            else:
                func = target
            task_name = name or default_task_name(target.__module__, target.__qualname__)
            if task_name in self.tasks:
                raise ValueError(f"task {task_name!r} is already registered")
            t: Task[P2, R2] = Task(self, task_name, func, opts)
            self.tasks[task_name] = t
            return t

        if fn is not None:
            return register(fn)
        return register

    def maintenance_service(self, *, interval: float, scope: ServiceScope = "leader",
                            name: str | None = None) -> Callable[[SF], SF]:
        """Register an async function as a maintenance service of every worker of this App.

            @app.maintenance_service(interval=60, scope="leader")
            async def expire_sessions(ctx: pgbatch.MaintenanceContext) -> None:
                await ctx.client.enqueue("sessions", {"task": "expire"})

        ``interval``: seconds between the starts of two runs. ``scope``:
        ``"leader"`` (only on the node holding the maintenance leadership
        lease) or ``"node"`` (on every worker). ``name`` defaults to the
        function's qualified name. The function gets a ``MaintenanceContext``;
        an exception it raises is logged and the run retried with backoff.
        Returns the function unchanged.
        """
        def register(fn: SF) -> SF:
            from pgbatch.worker.services import MaintenanceService  # noqa: PLC0415 - no cycle

            self.add_maintenance_service(MaintenanceService(
                name or f"{fn.__module__}.{fn.__qualname__}", interval, fn, scope))
            return fn
        return register

    def add_maintenance_service(self, service: MaintenanceService) -> None:
        """Add a ``MaintenanceService`` to every worker of this App (names must be unique)."""
        if any(s.name == service.name for s in self.maintenance_services):
            raise ValueError(f"a maintenance service named {service.name!r} is already registered")
        self.maintenance_services.append(service)

    def schedule(
        self, name: str, *, cron: str | None = None, every: float | timedelta | None = None,
        anchor: datetime | None = None, once_at: datetime | None = None, manual: bool = False,
        tz: str = "UTC", task: Task[Any, Any] | str | None = None,
        kwargs: dict[str, Json] | None = None, queue: str | None = None,
        payload: dict[str, Json] | None = None, job: Job | str | None = None,
        params: dict[str, Json] | None = None, misfire_threshold: float | timedelta = 60,
        catch_up_missed_within: float | timedelta | None = None,
        overlap_policy: OverlapPolicy = "allow", enabled: bool = True,
    ) -> ScheduleDefinition:
        """Define a schedule in code; every worker of this App creates it at start, or
        brings it up to date when the definition changed (``Schedules.ensure``: a
        changed timing never fires retroactively; a pause by an operator is kept).

            app.schedule("nightly-report", cron="0 2 * * *", tz="Europe/Berlin",
                         task=nightly_report, catch_up_missed_within=timedelta(hours=2))

        When: exactly one of ``cron`` (+ ``tz``), ``every`` (seconds or a timedelta,
        from ``anchor``), ``once_at``, ``manual=True``. What: a ``task`` (a ``Task`` of
        this App, whose queue is the default, or a task name) with ``kwargs``; or
        ``queue`` + ``payload``; or a batch ``job`` (a ``Job``, registered by the
        workers before the schedule, or a job name) with ``params``. Durations are
        seconds or timedeltas. Returns the ``ScheduleDefinition``; a name is defined
        once (``ValueError``). See docs/schedules.md.
        """
        from pgbatch.schedule.in_code import code_schedule  # noqa: PLC0415 - no cycle

        if name in self.schedules:
            raise ValueError(f"a schedule named {name!r} is already defined")
        entry = code_schedule(
            name, cron=cron, every=every, anchor=anchor, once_at=once_at, manual=manual, tz=tz,
            task=task, kwargs=kwargs, queue=queue, payload=payload, job=job, params=params,
            misfire_threshold=misfire_threshold, catch_up_missed_within=catch_up_missed_within,
            overlap_policy=overlap_policy, enabled=enabled)
        self.schedules[name] = entry
        return entry.definition

    def register_executor(self, kind: str, executor: Executor) -> None:
        """Run jobs whose payload has ``"kind": kind`` with ``executor``.

        ``"task"`` (the kind of jobs without one) is built in and cannot be
        replaced; a kind is registered once. Workers of this App serve the
        executor's ``queues()`` by default.
        """
        if not isinstance(kind, str) or not kind.strip():
            raise InvalidArgument(f"an executor kind must be a non-empty string, got {kind!r}")
        if kind == "task" or kind in self.executors:
            raise ValueError(f"an executor for kind {kind!r} is already registered")
        self.executors[kind] = executor

    def queues(self) -> list[str]:
        """The queues of the registered tasks, then of the executors, in registration order."""
        seen: dict[str, None] = {}
        for t in self.tasks.values():
            seen.setdefault(t.options.queue, None)
        for executor in self.executors.values():
            for q in executor.queues():
                seen.setdefault(q, None)
        return list(seen)

    # -- the schema and jobs -------------------------------------------------------
    def migrate(self) -> list[str]:
        """Install or upgrade the schema at the App's dsn (``pgbatch.migrate``); revisions applied.

        Connect as the schema owner (docs/roles.md): an App that runs as a
        producer or worker role migrates nothing; use ``pgbatch migrate`` then.
        """
        from pgbatch.migrations import migrate  # noqa: PLC0415 - alembic is slow to import

        return migrate(self.dsn)

    def get_job(self, job_id: UUID) -> JobInfo:
        """A job's state, live or archived (``JobNotFound`` if there is none).

        The same as ``app.client.get_job(job_id)``; ``await app.aget_job(job_id)``
        from async code.
        """
        return self.client.get_job(job_id)

    async def aget_job(self, job_id: UUID) -> JobInfo:
        """Async ``get_job``."""
        return await self.async_client.get_job(job_id)

    # -- clients ---------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The sync client (opens its pool on first use)."""
        with self._lock:
            if self._client is None:
                pool = ConnectionPoolGuard.new_pool(
                    self.dsn, min_size=1, max_size=self.pool_size,
                    kwargs=connection_kwargs(self.pooler), name="pgbatch-sync")
                pool.open()
                self._client = Client(pool)
            return self._client

    @property
    def async_client(self) -> AsyncClient:
        """The async client, the counterpart of ``client`` (a property too).

        Its pool opens at its first use, on the event loop that uses it first
        (use it from that loop only), so it can be got anywhere, even before a
        loop runs: ``await app.async_client.get_job(job_id)``.
        """
        with self._lock:
            if self._aclient is None:
                pool = AsyncConnectionPoolGuard.new_pool(
                    self.dsn, min_size=1, max_size=self.pool_size,
                    kwargs=connection_kwargs(self.pooler), name="pgbatch-async",
                    open_on_first_use=True)
                self._aclient = AsyncClient(pool)
            return self._aclient

    async def aclient(self) -> AsyncClient:
        """Deprecated spelling of ``app.async_client``: the same client, its pool opened.

        Kept working (with a ``DeprecationWarning``); use the property.
        """
        warnings.warn("await app.aclient() is deprecated: use the app.async_client property "
                      "(like app.client)", DeprecationWarning, stacklevel=2)
        client = self.async_client
        await client.pool.open(wait=True)
        return client

    def close(self) -> None:
        """Close the sync pool."""
        with self._lock:
            if self._client is not None:
                self._client.pool.close()
                self._client = None

    async def aclose(self) -> None:
        """Close the async pool (and the sync one)."""
        if self._aclient is not None:
            await self._aclient.close()
            self._aclient = None
        self.close()


#: An exception class or a tuple of them (``retry_on``/``dead_on``).
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


def _types(value: ExceptionTypes) -> tuple[type[BaseException], ...]:
    return value if isinstance(value, tuple) else (value,)


def _td(value: float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)

