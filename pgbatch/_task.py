"""A task: a function (or ``Handler``) registered with an ``App``, and its options.

``TaskOptions`` are checked against the SQL API's limits (``pgbatch._limits``)
when they are made, so a task declared with an impossible lease, attempt
count, priority, backoff or queue name fails at its declaration
(``InvalidArgument`` / ``InvalidQueueName``), not at its first enqueue or
claim.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar
from uuid import UUID

import psycopg

from pgbatch import _limits
from pgbatch._checks import check_queue_name
from pgbatch._errors import InvalidArgument
from pgbatch._types import EnqueueRequest, Json

if TYPE_CHECKING:
    from pgbatch._app import App
    from pgbatch.worker.context import JobContext

P = ParamSpec("P")
R = TypeVar("R")

#: The range of an SQL ``integer`` (priority, max_attempts).
SQL_INT_MIN = -(2**31)
SQL_INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class TaskOptions:
    """How a task's jobs are enqueued and run."""

    queue: str = "default"
    priority: int = 0
    max_attempts: int = _limits.DEFAULT_MAX_ATTEMPTS
    lease: timedelta = _limits.DEFAULT_LEASE
    timeout: float | None = None
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_cap: timedelta = timedelta(hours=1)
    pass_context: bool = False
    transactional: bool = False
    #: Only these exceptions are retried; any other is final (dead at once). None: all retry.
    retry_on: tuple[type[BaseException], ...] | None = None
    #: These exceptions are final: the job is dead at once, whatever attempts are left.
    dead_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        check_task_options(self)


class Handler:
    """Base class of class-based tasks: implement exactly one of the two methods.

    ``process(ctx)`` does the work; ``process_with_effects(ctx)`` does the work
    and returns ``AckEffects`` applied atomically with the ack. Each defaults
    to the other. Either may be ``async def``.
    """

    def process(self, ctx: JobContext, **kwargs: Any) -> Any:
        """Do the job's work (default: ``process_with_effects`` without effects)."""
        return self.process_with_effects(ctx, **kwargs)

    def process_with_effects(self, ctx: JobContext, **kwargs: Any) -> Any:
        """Do the work and return ``AckEffects`` or None (default: ``process``)."""
        return self.process(ctx, **kwargs)


def _handler_entry(handler: Handler) -> Callable[..., Any]:
    cls = type(handler)
    own_process = cls.process is not Handler.process
    own_effects = cls.process_with_effects is not Handler.process_with_effects
    if own_process == own_effects:
        raise TypeError(
            f"{cls.__name__} must implement exactly one of process() and "
            "process_with_effects()")
    return handler.process_with_effects if own_effects else handler.process


class Task(Generic[P, R]):
    """A registered task: call ``defer``/``enqueue`` to create jobs for it."""

    def __init__(self, app: App, name: str, fn: Callable[..., Any], options: TaskOptions) -> None:
        self.app = app
        self.name = name
        self.fn = fn
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function directly (no job is created)."""
        return self.fn(*args, **kwargs)

    def request(self, kwargs: Mapping[str, Json] | None = None, *, run_at: datetime | None = None,
                priority: int | None = None, dedup_key: str | None = None,
                max_attempts: int | None = None, id: UUID | None = None,
                queue: str | None = None) -> EnqueueRequest:
        """An ``EnqueueRequest`` for this task (for ``enqueue_many`` or ack effects)."""
        return EnqueueRequest(
            queue=queue or self.options.queue,
            payload={"task": self.name, "kwargs": dict(kwargs or {})},
            run_at=run_at,
            priority=self.options.priority if priority is None else priority,
            dedup_key=dedup_key,
            max_attempts=self.options.max_attempts if max_attempts is None else max_attempts,
            id=id,
        )

    def enqueue(self, kwargs: Mapping[str, Json] | None = None, *,
                conn: psycopg.Connection[Any] | None = None, run_at: datetime | None = None,
                priority: int | None = None, dedup_key: str | None = None,
                max_attempts: int | None = None, id: UUID | None = None) -> UUID:
        """Enqueue a job (in ``conn``'s transaction when given); returns its id."""
        r = self.request(kwargs, run_at=run_at, priority=priority, dedup_key=dedup_key,
                         max_attempts=max_attempts, id=id)
        return self.app.client.enqueue(r.queue, r.payload, run_at=r.run_at, priority=r.priority,
                                       dedup_key=r.dedup_key, max_attempts=r.max_attempts,
                                       id=r.id, conn=conn)

    async def aenqueue(self, kwargs: Mapping[str, Json] | None = None, *,
                       conn: psycopg.AsyncConnection[Any] | None = None,
                       run_at: datetime | None = None, priority: int | None = None,
                       dedup_key: str | None = None, max_attempts: int | None = None,
                       id: UUID | None = None) -> UUID:
        """Async ``enqueue``."""
        r = self.request(kwargs, run_at=run_at, priority=priority, dedup_key=dedup_key,
                         max_attempts=max_attempts, id=id)
        client = self.app.async_client
        return await client.enqueue(r.queue, r.payload, run_at=r.run_at, priority=r.priority,
                                    dedup_key=r.dedup_key, max_attempts=r.max_attempts,
                                    id=r.id, conn=conn)

    def enqueue_many(self, kwargs_list: Sequence[Mapping[str, Json]], *,
                     conn: psycopg.Connection[Any] | None = None, run_at: datetime | None = None,
                     priority: int | None = None,
                     max_attempts: int | None = None) -> list[UUID]:
        """Enqueue one job per kwargs mapping, in one transaction (``conn``'s when given).

        One ``enqueue_many`` call: the ids come back in the order of ``kwargs_list``.
        """
        requests = [self.request(kw, run_at=run_at, priority=priority, max_attempts=max_attempts)
                    for kw in kwargs_list]
        return self.app.client.enqueue_many(requests, conn=conn) if requests else []

    async def aenqueue_many(self, kwargs_list: Sequence[Mapping[str, Json]], *,
                            conn: psycopg.AsyncConnection[Any] | None = None,
                            run_at: datetime | None = None, priority: int | None = None,
                            max_attempts: int | None = None) -> list[UUID]:
        """Async ``enqueue_many``."""
        requests = [self.request(kw, run_at=run_at, priority=priority, max_attempts=max_attempts)
                    for kw in kwargs_list]
        if not requests:
            return []
        client = self.app.async_client
        return await client.enqueue_many(requests, conn=conn)

    def defer(self, **kwargs: Json) -> UUID:
        """Enqueue a job with these keyword arguments, in its own transaction."""
        return self.enqueue(kwargs)

    async def defer_async(self, **kwargs: Json) -> UUID:
        """Async ``defer``."""
        return await self.aenqueue(kwargs)


def check_task_options(opts: TaskOptions) -> None:
    """Raise ``InvalidArgument`` (or ``InvalidQueueName``) for options the SQL API would refuse."""
    check_queue_name(opts.queue)
    if isinstance(opts.priority, bool) or not isinstance(opts.priority, int) \
            or not SQL_INT_MIN <= opts.priority <= SQL_INT_MAX:
        raise InvalidArgument(f"invalid priority: {opts.priority!r}, must be an integer "
                              f"from {SQL_INT_MIN} to {SQL_INT_MAX}")
    if isinstance(opts.max_attempts, bool) or not isinstance(opts.max_attempts, int) \
            or not 1 <= opts.max_attempts <= SQL_INT_MAX:
        raise InvalidArgument(f"invalid max_attempts: {opts.max_attempts!r}, must be at least 1 "
                              f"(and at most {SQL_INT_MAX})")
    if not _limits.MIN_LEASE <= opts.lease <= _limits.MAX_LEASE:
        raise InvalidArgument(f"invalid lease: {opts.lease}, must be {_limits.MIN_LEASE} "
                              f"to {_limits.MAX_LEASE}")
    if opts.timeout is not None and (not math.isfinite(opts.timeout) or opts.timeout <= 0):
        raise InvalidArgument(f"invalid timeout: {opts.timeout}, must be a positive number "
                              "of seconds or None")
    for what, types in (("retry_on", opts.retry_on or ()), ("dead_on", opts.dead_on)):
        if not isinstance(types, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in types):
            raise InvalidArgument(f"invalid {what}: {types!r}, must be exception classes")
    for what, value in (("backoff_base", opts.backoff_base), ("backoff_cap", opts.backoff_cap)):
        if not timedelta(0) <= value <= _limits.MAX_RUN_AT_OFFSET:
            raise InvalidArgument(f"invalid {what}: {value}, must be 0 "
                                  f"to {_limits.MAX_RUN_AT_OFFSET}")
