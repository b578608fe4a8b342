"""Runs sync task functions on daemon threads.

A sync task cannot be interrupted, so a worker that must exit (grace period
over, or a second signal) cannot wait for it. ``concurrent.futures`` joins its
threads at interpreter exit; these threads are daemons, so the process can
exit while a task still runs (its claim then expires and is reaped). A task
that finishes after its worker's event loop closed is dropped quietly.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()


class DaemonThreadRunner:
    """A fixed pool of daemon threads running callables for an event loop."""

    def __init__(self, size: int, name: str = "pgbatch-task") -> None:
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]
        for t in self._threads:
            t.start()

    def _loop(self) -> None:
        while True:
            item = self._work.get()
            if item is _STOP:
                return
            loop, fut, fn = item
            if fut.cancelled():
                continue
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                _deliver(loop, _set_exception, fut, exc)
            else:
                _deliver(loop, _set_result, fut, result)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on a pool thread and await its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._work.put((loop, fut, fn))
        return await fut

    def shutdown(self, *, wait: bool, timeout: float | None = None) -> list[str]:
        """Ask the threads to stop; with ``wait``, join them. Returns names still alive."""
        for _ in self._threads:
            self._work.put(_STOP)
        if wait:
            for t in self._threads:
                t.join(timeout)
        return [t.name for t in self._threads if t.is_alive()]


def _deliver(loop: asyncio.AbstractEventLoop, setter: Callable[[asyncio.Future[Any], Any], None],
             fut: asyncio.Future[Any], value: Any) -> None:
    try:
        loop.call_soon_threadsafe(setter, fut, value)
    except RuntimeError:
        pass  # the loop is closed: the worker exited while this task ran, nobody waits


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
