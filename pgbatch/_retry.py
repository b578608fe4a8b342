"""Producer retries: one ``enqueue``/``enqueue_many`` call makes its jobs exactly once.

The client mints each job's id (``new_job_id``, time-ordered like
``pgbatch.uuid_v7()``) before the first attempt, so an attempt whose outcome
is unknown (the connection broke after the statement was sent: ``AdminShutdown``,
"server closed the connection unexpectedly", a read-only session after a
failover) is simply sent again with the same ids. If the earlier attempt had
committed, the database answers ``DuplicateJobId`` for one of those ids, which
this module reads as "already done" (``EnqueueAttempts.confirms``): an
``enqueue_many`` is one transaction, so one of its ids present means all are.

Between attempts the client waits for the process's ``DatabaseWatch``
(``pgbatch._reconnect``) to see a writable server again, so a retry goes out
as soon as the new primary answers. ``retry_for`` seconds after the first
attempt (default ``DEFAULT_RETRY_FOR``) the client gives up with
``EnqueueUnconfirmed``, which carries the ids.

Calls given ``conn=`` run in the caller's transaction and are never retried:
the caller owns that transaction and must retry it as a whole.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Final
from uuid import UUID

import psycopg

from pgbatch._errors import DuplicateJobId, EnqueueUnconfirmed, InvalidArgument
from pgbatch._reconnect import is_connection_lost
from pgbatch._types import EnqueueRequest

#: Seconds an enqueue call keeps retrying lost connections, by default.
DEFAULT_RETRY_FOR: Final = 60.0
#: The longest ``retry_for`` accepted (one day).
MAX_RETRY_FOR: Final = 86400.0

_UUID_RE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_job_id() -> UUID:
    """A fresh version-7 UUID: 48 bits of Unix milliseconds, then random bits."""
    ms = time.time_ns() // 1_000_000
    rand = secrets.randbits(74)
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | ((rand >> 62) << 64) \
        | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return UUID(int=value)


def check_retry_for(retry_for: float) -> float:
    """``retry_for`` if it is 0 to ``MAX_RETRY_FOR`` seconds; InvalidArgument otherwise."""
    if (isinstance(retry_for, bool) or not isinstance(retry_for, int | float)
            or not math.isfinite(retry_for) or not 0 <= retry_for <= MAX_RETRY_FOR):
        raise InvalidArgument(
            f"retry_for must be 0 to {MAX_RETRY_FOR:g} seconds, got {retry_for!r}")
    return float(retry_for)


def with_ids(requests: Sequence[EnqueueRequest]) -> list[EnqueueRequest]:
    """The requests, each without an id given one (``new_job_id``)."""
    return [r if r.id is not None else replace(r, id=new_job_id()) for r in requests]


class EnqueueAttempts:
    """The retry state of one enqueue call: its ids, its deadline, whether an outcome was lost."""

    def __init__(self, job_ids: Sequence[UUID | None], retry_for: float) -> None:
        self.job_ids = [i for i in job_ids if i is not None]
        self.deadline = time.monotonic() + check_retry_for(retry_for)
        self.attempts = 0
        self.lost = False

    def remaining(self) -> float:
        """Seconds left until the deadline (0 when it passed)."""
        return max(0.0, self.deadline - time.monotonic())

    def checkout_timeout(self) -> float:
        """How long this attempt may wait for a pooled connection (at least a moment)."""
        return max(self.remaining(), 0.1)

    def confirms(self, exc: DuplicateJobId) -> bool:
        """Whether ``exc`` says an earlier attempt of this call committed (after a lost one)."""
        if not self.lost:
            return False
        found = _UUID_RE.findall(f"{exc.message} {exc.detail or ''}".lower())
        return any(UUID(f) in self.job_ids for f in found)

    def retry(self, exc: psycopg.Error) -> bool:
        """Whether to send the call again after ``exc``.

        Errors that do not mean a lost connection are not retried (False: re-raise);
        past the deadline, a lost one raises ``EnqueueUnconfirmed``.
        """
        self.attempts += 1
        after_loss = self.lost and isinstance(exc, psycopg.OperationalError)  # a pool timeout
        if not is_connection_lost(exc) and not after_loss:
            return False
        self.lost = True
        if self.remaining() <= 0:
            raise EnqueueUnconfirmed(
                f"enqueue not confirmed: the connection was lost {self.attempts} times in "
                f"a row until the retry deadline; the jobs may exist (ids "
                f"{', '.join(map(str, self.job_ids))})", self.job_ids) from exc
        return True
