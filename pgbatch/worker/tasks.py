"""The executor of kind ``"task"``: runs ``payload["task"]`` from ``app.tasks``.

A task job's payload is ``{"task": <name>, "kwargs": {...}}``. The task
function gets the kwargs (and the ``JobContext`` first with
``pass_context``); what it returns (``AckEffects`` or anything else) becomes
the ack (see ``executor``: an ``Outcome`` such as ``Release()`` is settled
as such). A ``transactional`` task runs inside one fenced transaction that
ends with its ack (``ctx.conn`` is that transaction's connection): its
writes commit together with the ack, or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pgbatch._types import AckEffects, ClaimedJob
from pgbatch.worker.context import JobContext
from pgbatch.worker.executor import Call
from pgbatch.worker.failures import check_arguments, final_failure, returned_effects, unknown_task

if TYPE_CHECKING:
    from pgbatch._app import App
    from pgbatch._task import Task


def _effects(result: Any) -> AckEffects | None:
    return returned_effects(result)


def _kwargs(ctx: JobContext) -> dict[str, Any]:
    kwargs = ctx.job.payload.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"job kwargs must be a JSON object, got {type(kwargs).__name__}")
    return kwargs


class TaskExecutor:
    """Resolves task jobs of one App (one ``Call`` per task, made once)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._calls: dict[str, Call] = {}  # tasks are never unregistered

    def queues(self) -> Sequence[str]:
        """The queues of the registered tasks, in registration order."""
        return list(dict.fromkeys(t.options.queue for t in self.app.tasks.values()))

    def claim_lease(self, queue: str) -> timedelta | None:
        """The largest lease of the queue's tasks."""
        leases = [t.options.lease for t in self.app.tasks.values() if t.options.queue == queue]
        return max(leases, default=None)

    def resolve(self, job: ClaimedJob) -> Call:
        """The task named by the payload (the call reads its kwargs from the job)."""
        payload = job.payload
        name = payload.get("task") if isinstance(payload, dict) else None
        cached = self._calls.get(name) if isinstance(name, str) else None
        if cached is not None:
            return cached
        task = self.app.tasks.get(name) if isinstance(name, str) else None
        if task is None:
            raise unknown_task(name, self.app.tasks)
        opts = task.options
        call = Call(name=task.name, fn=_entry(task), is_async=task.is_async, lease=opts.lease,
                    timeout=opts.timeout, backoff_base=opts.backoff_base,
                    backoff_cap=opts.backoff_cap)
        self._calls[task.name] = call
        return call


def _entry(task: Task[Any, Any]) -> Any:
    """``fn(ctx)`` for ``task``; with ``retry_on``/``dead_on``, final errors become ``DeadOn``."""
    entry = _plain_entry(task)
    opts = task.options
    if opts.retry_on is None and not opts.dead_on:
        return entry
    retry_on, dead_on = opts.retry_on, opts.dead_on
    if task.is_async or (opts.transactional and task.is_async):
        async def run_classified(ctx: JobContext) -> Any:
            try:
                return await entry(ctx)
            except Exception as exc:
                final = final_failure(exc, retry_on, dead_on)
                if final is None:
                    raise
                raise final from exc
        return run_classified

    def run_classified_sync(ctx: JobContext) -> Any:
        try:
            return entry(ctx)
        except Exception as exc:
            final = final_failure(exc, retry_on, dead_on)
            if final is None:
                raise
            raise final from exc
    return run_classified_sync


def _plain_entry(task: Task[Any, Any]) -> Any:
    """``fn(ctx)`` running ``task`` with the job's kwargs.

    For a plain task it returns what the task function returns (a coroutine
    for an async one): no wrapper coroutine per job on the hot path.
    A ``TypeError`` from the call is checked against the function's signature
    (only then: nothing is added to a call that works): kwargs that do not fit
    raise ``TaskArgumentsMismatch``, which ends the job dead at once.
    """
    fn = task.fn
    opts = task.options
    name = task.name
    if opts.transactional:
        if task.is_async:
            async def run_transactional(ctx: JobContext) -> None:
                kwargs = _kwargs(ctx)
                async with ctx.fenced() as conn:
                    ctx.conn = conn
                    try:
                        coro = fn(ctx, **kwargs)
                    except TypeError as exc:
                        check_arguments(name, fn, kwargs, exc, with_context=True)
                        raise
                    result = await coro
                    await ctx.ack_in(conn, _effects(result))
            return run_transactional

        def run_transactional_sync(ctx: JobContext) -> None:
            kwargs = _kwargs(ctx)
            with ctx.fenced_sync() as conn:
                ctx.conn = conn
                try:
                    result = fn(ctx, **kwargs)
                except TypeError as exc:
                    check_arguments(name, fn, kwargs, exc, with_context=True)
                    raise
                ctx.ack_in_sync(conn, _effects(result))
        return run_transactional_sync
    if opts.pass_context:
        def run_with_context(ctx: JobContext) -> Any:
            kwargs = _kwargs(ctx)
            try:
                return fn(ctx, **kwargs)
            except TypeError as exc:
                check_arguments(name, fn, kwargs, exc, with_context=True)
                raise
        return run_with_context

    def run(ctx: JobContext) -> Any:
        kwargs = ctx.job.payload.get("kwargs") or {}  # the hot path: _kwargs inlined
        if not isinstance(kwargs, dict):
            kwargs = _kwargs(ctx)
        try:
            return fn(**kwargs)
        except TypeError as exc:
            check_arguments(name, fn, kwargs, exc, with_context=False)
            raise
    return run
