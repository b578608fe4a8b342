"""What a worker reports about itself: its default node id, its counters, its error."""

from __future__ import annotations

import itertools
import os
import socket
from dataclasses import dataclass

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
    """A snapshot of a worker's counters (each part owns its own; tests and the bench read this)."""

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


class WorkerError(RuntimeError):
    """The worker stopped because of an error on its claim path."""
