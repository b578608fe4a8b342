"""The settler: batches through ack_ids, per-job outcomes, and backpressure on claims."""

from __future__ import annotations

import asyncio
from typing import Any

from pgbatch._aio_client import AsyncClient
from pgbatch._types import ClaimedJob
from pgbatch.worker.settler import Settler
from tests.conftest import TestDatabase
from tests.helpers import claim, counts, enqueue, expire_lease

Conn = Any


async def _settle(dsn: str, jobs: list[Any]) -> tuple[Settler, list[bool]]:
    """Queue acks of ``jobs`` (claimed rows) and record whether a claim could proceed."""
    client = await AsyncClient.connect(dsn, max_size=2)
    settler = Settler(client, max_batch=3, high_water=6)
    room: list[bool] = []
    try:
        for j in jobs:
            settler.ack(ClaimedJob(**j), None)
        # ten acks wait: a claim must wait for room
        wait = asyncio.create_task(settler.wait_for_room())
        await asyncio.sleep(0)
        room.append(wait.done())
        runner = asyncio.create_task(settler.run())
        await asyncio.wait_for(wait, 30)
        room.append(wait.done())
        settler.close()
        await asyncio.wait_for(runner, 30)
    finally:
        await client.close()
    return settler, room


def test_settler_acks_in_batches_reports_lost_claims_and_holds_claims_back(
        db: TestDatabase, conn: Conn) -> None:
    for i in range(10):
        enqueue(conn, "s", {"i": i})
    jobs = claim(conn, "s", 10)
    expire_lease(conn, jobs[4]["id"])
    conn.execute("select pgbatch.reap_expired()")
    settler, room = asyncio.run(_settle(db.dsn, jobs))
    assert room == [False, True]
    assert settler.stats.acked == 9
    assert settler.stats.claim_lost == 1
    assert settler.stats.batches == 4  # 10 acks, at most 3 per batch
    assert settler.backlog == 0
    assert counts(conn, "s") == {"pending": 1, "scheduled": 0, "claimed": 0, "done": 9,
                                 "dead": 0, "cancelled": 0}
