"""The overview's throughput chart: finished jobs per interval, sampled by the server.

The archive has no index on ``finished_at`` (each one would cost every ack),
so the chart is not read back from it: every ``sample_seconds`` the server
takes ``queue_stats()`` (cheap: it sums the append-only counters) and keeps
the totals of done + dead + cancelled jobs per queue for the last
``WINDOW_SECONDS``. A bar is the difference of two samples. The chart starts
empty when the server starts and fills as it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

from pgbatch._aio_client import AsyncClient

log = logging.getLogger(__name__)

#: How much history the chart shows.
WINDOW_SECONDS: Final = 15 * 60


@dataclass(frozen=True)
class Sample:
    """Totals of finished (done + dead + cancelled) jobs per queue at monotonic ``at``."""

    at: float
    finished: dict[str, int]


@dataclass(frozen=True)
class Bar:
    """Jobs finished between two samples: ``seconds_ago`` is the later one's age."""

    seconds_ago: float
    count: int


class Sampler:
    """Samples ``queue_stats()`` in the background; :meth:`bars` reads the history."""

    def __init__(self, client: AsyncClient, every: float) -> None:
        self.client = client
        self.every = every
        self.samples: deque[Sample] = deque(maxlen=max(2, int(WINDOW_SECONDS / every) + 1))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the first sample and start the loop."""
        self._task = asyncio.create_task(self._run(), name="pgbatch-web-throughput")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sample(self) -> None:
        """Take one sample now."""
        stats = await self.client.queue_stats()
        self.samples.append(Sample(time.monotonic(),
                                   {s.queue: s.done + s.dead + s.cancelled for s in stats}))

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:  # a lost database must not end the loop
                log.warning("throughput sample failed", exc_info=True)
            await asyncio.sleep(self.every)

    def bars(self, queue: str | None = None) -> list[Bar]:
        """Finished jobs per sample interval, oldest first (all queues when ``queue`` is None)."""
        now = time.monotonic()
        out: list[Bar] = []
        samples = list(self.samples)

        def total(s: Sample) -> int:
            return s.finished.get(queue, 0) if queue else sum(s.finished.values())

        for prev, cur in itertools.pairwise(samples):
            out.append(Bar(now - cur.at, max(0, total(cur) - total(prev))))
        return out
