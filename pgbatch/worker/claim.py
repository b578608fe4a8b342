"""A claim as the worker holds it: the job, its key, its lease, who watches it.

One ``Claim`` is made per claimed job by the claimer and passed on unchanged:
the lease keeper renews it (keyed by ``(job_id, claim_token)``, whether the
job waits in the prefetch buffer or runs), the runner runs it, the settler
settles its job. The ``watcher`` is told when a renewal finds the job
cancelled or the claim gone: the claimer while the claim is buffered, the
running job once it runs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Protocol
from uuid import UUID

from pgbatch._types import ClaimedJob

#: ``(job_id, claim_token)`` as integers (``UUID.int``): a claim's identity,
#: hashed in C on the hot path (a ``UUID`` hashes in Python).
ClaimKey = tuple[int, int]


def claim_key(job_id: UUID, claim_token: UUID) -> ClaimKey:
    """The key of the claim ``claim_token`` on job ``job_id``."""
    return (job_id.int, claim_token.int)


class ClaimWatcher(Protocol):
    """Who is told what a lease renewal found out about a claim."""

    def claim_cancelled(self, claim: Claim) -> None:
        """``cancel_job`` was called for the claim's job."""

    def claim_lost(self, claim: Claim) -> None:
        """The claim is gone (reaped, re-claimed): its job will not be settled by us."""


class Claim:
    """One claimed job inside the worker."""

    __slots__ = ("job", "key", "lease", "renew_at", "watcher")

    def __init__(self, job: ClaimedJob, lease: timedelta, watcher: ClaimWatcher,
                 renew_at: float | None = None) -> None:
        """``renew_at``: when the first renewal is due (default: a third of the lease from now)."""
        self.job = job
        self.key: ClaimKey = (job.id.int, job.claim_token.int)
        self.lease = lease
        self.watcher = watcher
        self.renew_at = (time.monotonic() + lease.total_seconds() / 3 if renew_at is None
                         else renew_at)

    def extended(self) -> None:
        """The lease was just extended: the next renewal is due in a third of it."""
        self.renew_at = time.monotonic() + self.lease.total_seconds() / 3
