"""The lease keeper: renews every claim the worker holds, buffered or running.

One map keyed by ``(job_id, claim_token)``. Each claim is renewed every third
of its lease (``renew_lease``) until it is dropped (settled, released, or
lost). A renewal is also how the worker learns of ``cancel_job`` (the claim's
watcher is told, and renewals stop) and of a lost claim (the lease expired
and the job was reaped or re-claimed: the watcher is told, renewals stop). A
fenced transaction that extended the lease pushes the next renewal back
(``Claim.extended``). Renewals run one at a time on the worker's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import psycopg

from pgbatch._aio_client import AsyncClient
from pgbatch._errors import ClaimLost, JobCancelled, JobNotFound
from pgbatch._reconnect import during_outage
from pgbatch.worker.claim import Claim, ClaimKey

log = logging.getLogger("pgbatch.worker")


@dataclass
class LeaseStats:
    """Counters of the lease keeper."""

    renewals: int = 0
    lost_renewals: int = 0
    cancellations: int = 0


class LeaseKeeper:
    """Renews the leases of the claims it keeps."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.stats = LeaseStats()
        self._claims: dict[ClaimKey, Claim] = {}
        self._wake = asyncio.Event()
        self._next = float("inf")

    @property
    def held(self) -> int:
        """Claims kept (renewed) now."""
        return len(self._claims)

    def keep(self, claim: Claim) -> None:
        """Renew ``claim`` from now on."""
        self._claims[claim.key] = claim
        if claim.renew_at < self._next:
            self._wake.set()

    def drop(self, claim: Claim) -> None:
        """Stop renewing ``claim`` (settled, released or lost)."""
        self._claims.pop(claim.key, None)

    async def run(self) -> None:
        """Renew due leases until cancelled."""
        while True:
            now = time.monotonic()
            for claim in [c for c in self._claims.values() if c.renew_at <= now]:
                if claim.key in self._claims:
                    await self._renew(claim)
            self._next = min((c.renew_at for c in self._claims.values()), default=float("inf"))
            self._wake.clear()
            timeout = None if self._next == float("inf") else max(
                self._next - time.monotonic(), 0.005)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _renew(self, claim: Claim) -> None:
        job = claim.job
        try:
            await self.client.renew_lease(job.id, job.claim_token, claim.lease)
        except JobCancelled:
            self.stats.cancellations += 1
            log.info("job %s was cancelled; stopping it", job.id)
            self.drop(claim)
            claim.watcher.claim_cancelled(claim)
            return
        except (ClaimLost, JobNotFound):
            self.stats.lost_renewals += 1
            log.warning("lost claim: lease of job %s could not be renewed (reaped)", job.id)
            self.drop(claim)
            claim.watcher.claim_lost(claim)
            return
        except psycopg.Error as exc:
            level = logging.INFO if during_outage(self.client.guard.watch, exc) else logging.WARNING
            log.log(level, "lease renewal of job %s failed (%s); retrying", job.id, exc)
            claim.renew_at = time.monotonic() + 0.5
            return
        self.stats.renewals += 1
        claim.extended()
