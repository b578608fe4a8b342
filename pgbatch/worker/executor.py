"""The executor seam: how the worker runs a kind of job it knows nothing about.

Every claimed job has a *kind*: its payload's ``"kind"`` field, or
``"task"`` when the payload has none (or is not a JSON object). The worker
looks the kind up among the executors registered on the App
(``App.register_executor(kind, executor)``; ``"task"`` is built in: it runs
``payload["task"]`` from ``app.tasks``) and asks that executor to
``resolve`` the job into a ``Call``: what to run, under which lease, with
which retry policy. The runner runs it and settles the job from what it
returns (an ``Outcome``; ``AckEffects`` means ``Ack(effects)``, anything else,
``None`` included, ``Ack()``) or raises (a nack with the
error). A job whose kind has no executor, or that its executor cannot
resolve, is nacked with ``UnknownHandler`` (``UnknownTask`` for tasks).

An executor (the batch engine's step executor, say) declares the queues its
jobs live on, so a worker of the App serves them by default, and the lease
its claims need there. Its handler gets a ``JobContext``: ``stop_requested``
and ``cancelled`` tell a shutdown (hand-off) from a cancel; ``fenced()``
runs any number of fenced, durable transactions inside the one claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pgbatch import _limits
from pgbatch._types import AckEffects, ClaimedJob, Json

#: The kind of a job whose payload names none.
DEFAULT_KIND = "task"


def kind_of(job: ClaimedJob) -> str:
    """The job's kind: ``payload["kind"]`` when it is a string, else ``"task"``."""
    payload = job.payload
    if isinstance(payload, dict):
        kind = payload.get("kind")
        if isinstance(kind, str):
            return kind
    return DEFAULT_KIND


class Outcome:
    """How a handler asks for its job to be settled."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Ack(Outcome):
    """Done; ``effects`` are applied atomically with the ack."""

    effects: AckEffects | None = None


@dataclass(frozen=True, slots=True)
class Release(Outcome):
    """Give the claim back (pending again, attempt not consumed): a hand-off."""

    reason: str = "handed off"


@dataclass(frozen=True, slots=True)
class Nack(Outcome):
    """Fail this attempt with ``error``; retry at ``retry_at`` or after the backoff."""

    error: Json
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter(Outcome):
    """Move the job to dead at once."""

    reason: str | None = None


class UnknownHandler(Exception):
    """The job names a handler this worker does not have (``error_type`` is recorded)."""

    def __init__(self, message: str, error_type: str = "UnknownHandler") -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class Call:
    """One job resolved by its executor: what the runner runs and how.

    ``fn(ctx)`` returns an ``Outcome`` (or ``AckEffects``, or anything else
    for a plain ``Ack()``); with ``is_async`` it returns an awaitable (a
    coroutine function, say) run on the event loop, else it runs on a worker
    thread. ``lease``: the lease its renewals and fenced commits
    extend. ``timeout``: seconds after which the attempt fails. ``interrupt``:
    cancel the coroutine when ``cancel_job`` is seen (async only).
    """

    name: str
    fn: Callable[[Any], Any]
    is_async: bool
    lease: timedelta = _limits.DEFAULT_LEASE
    timeout: float | None = None
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_cap: timedelta = timedelta(hours=1)
    interrupt: bool = True


class Executor(Protocol):
    """Runs the jobs of one kind (register with ``App.register_executor``)."""

    def queues(self) -> Sequence[str]:
        """The queues this kind's jobs are enqueued on (served by default)."""
        ...

    def claim_lease(self, queue: str) -> timedelta | None:
        """The lease claims on ``queue`` need for this kind (None: no opinion)."""
        ...

    def resolve(self, job: ClaimedJob) -> Call:
        """What to run for ``job``; raise ``UnknownHandler`` when there is nothing."""
        ...
