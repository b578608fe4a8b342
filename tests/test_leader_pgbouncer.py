"""Maintenance leadership through a real PgBouncer in transaction pooling mode.

Leadership is a lease row (``pgbatch.try_lead``), not a session lock, so
through a transaction pooler exactly one node leads, and nothing stays behind
on a pooled server connection when a node goes away: a directly connected
node takes over once the lease has run out and reaps an expired claim.

PgBouncer is started by ``tests/pooler.py``; the test is skipped when no
``pgbouncer`` binary is installed (Debian: ``apt-get install pgbouncer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from pgbatch._aio_client import AsyncClient
from pgbatch.worker.maintenance import Maintenance, MaintenanceConfig
from tests import pooler
from tests.conftest import TestDatabase
from tests.helpers import expire_lease, job_row
from tests.worker_harness import enqueue_jobs

TICK = 0.1
#: Long enough that a renewal through the pooler on a loaded 2-core machine (both CI
#: suites at once) is not late: a lease lost mid-test would fail the one-leader checks.
LEASE = 3.0
#: Process scheduling delays on a test machine shared with other work.
SCHEDULING_ALLOWANCE = timedelta(seconds=1.0)


@contextlib.contextmanager
def _pgbouncer(dsn: str) -> Iterator[str]:
    """A PgBouncer (pool_mode = transaction) in front of ``dsn``'s server; yields its DSN."""
    if not pooler.available():
        pytest.skip("pgbouncer is not installed")
    bouncer = pooler.start_pgbouncer(dsn, pool_size=3)
    try:
        yield bouncer.dsn(dsn)
    finally:
        bouncer.stop()


async def _client(dsn: str, pooled: bool) -> AsyncClient:
    """A client whose connections prepare nothing when they go through the pooler."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if pooled:
        kwargs["prepare_threshold"] = None
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn, min_size=1, max_size=3, kwargs=kwargs, open=False)
    await pool.open(wait=True)
    return AsyncClient(pool)


async def _node(dsn: str, node_id: str, pooled: bool) -> tuple[Maintenance, AsyncClient]:
    client = await _client(dsn, pooled)
    boot = uuid.uuid4()
    await client.register_node(node_id, boot, {})
    cfg = MaintenanceConfig(interval=TICK, leader_lease=LEASE)
    return Maintenance(dsn, client, node_id, boot, cfg), client


async def _wait_for(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def _scenario(direct_dsn: str, bouncer_dsn: str, admin: psycopg.AsyncConnection[Any]
                    ) -> None:
    (a, client_a), (b, client_b) = [await _node(bouncer_dsn, f"pooled-{n}", pooled=True)
                                    for n in "ab"]
    runs = {m: asyncio.create_task(m.run()) for m in (a, b)}

    async def advisory_locks() -> int:
        cur = await admin.execute("select count(*) from pg_locks where locktype = 'advisory'")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def one_leader() -> Maintenance | None:
        leaders = [m for m in (a, b) if m.is_leader]
        assert len(leaders) <= 1, "two nodes believe they lead"
        return leaders[0] if leaders else None

    leader = await _wait_for(one_leader, 20, "a leader through the pooler")
    start = [m.stats.ticks for m in (a, b)]

    async def ten_more_ticks() -> bool:
        assert await one_leader() is leader
        assert await advisory_locks() == 0
        return all(m.stats.ticks >= s + 10 for m, s in zip((a, b), start, strict=True))
    await _wait_for(ten_more_ticks, 20, "ten more ticks of each pooled node")
    assert leader.stats.lost_leadership == 0

    # the leader's process goes away without resigning (its connections just close);
    # the other pooled node exits cleanly
    leader_client = client_a if leader is a else client_b
    await leader_client.close()
    runs[leader].cancel()
    follower = b if leader is a else a
    follower.stop()
    await asyncio.gather(*runs.values(), return_exceptions=True)
    await (client_b if leader is a else client_a).close()
    assert await advisory_locks() == 0

    # a directly connected node takes over once the pooled leader's lease ran out,
    # and reaps an expired claim within the lease plus two ticks
    cur = await admin.execute("select lease_expires_at, clock_timestamp() from pgbatch.leader")
    lease_row = await cur.fetchone()
    assert lease_row is not None
    old_expiry, exited_at = lease_row
    (jid,) = await asyncio.to_thread(_expired_claim, direct_dsn)
    direct, direct_client = await _node(direct_dsn, "direct", pooled=False)
    run_direct = asyncio.create_task(direct.run())
    try:
        async def reaped() -> datetime | None:
            return await asyncio.to_thread(_reaped_at, direct_dsn, jid)
        reaped_at = await _wait_for(reaped, LEASE + 30, "the direct node to reap the claim")
        assert direct.is_leader
        assert reaped_at <= max(old_expiry, exited_at) + timedelta(seconds=2 * TICK) \
            + SCHEDULING_ALLOWANCE
        assert direct.stats.reaped >= 1
        assert await advisory_locks() == 0
    finally:
        direct.stop()
        await run_direct
        await direct_client.close()


def _expired_claim(dsn: str) -> list[uuid.UUID]:
    """An expired claim of a vanished worker, made on a plain connection."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids = enqueue_jobs(conn, "bounced", "nobody.runs.this")
        conn.execute("select pgbatch.claim('bounced', 1, '1 hour', 'gone')")
        expire_lease(conn, ids[0])
    return ids


def _reaped_at(dsn: str, jid: uuid.UUID) -> datetime | None:
    """When the job's expired claim was reaped (reaping sets run_at to its own time)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = job_row(conn, jid)
    if row and row["state"] == "pending" and (row["last_error"] or {}).get("type") == \
            "LeaseExpired":
        reaped_at: datetime = row["run_at"]
        return reaped_at
    return None


def test_through_a_transaction_pooler_one_node_leads_and_nothing_stays_on_pooled_sessions(
        db: TestDatabase) -> None:
    with _pgbouncer(db.dsn) as bouncer_dsn:
        async def main() -> None:
            admin = await db.aconnect()
            await _scenario(db.dsn, bouncer_dsn, admin)
        asyncio.run(main())
