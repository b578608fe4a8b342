"""The sync Client is generated from the AsyncClient and offers the same API;
both work end to end, and both honour the caller's transaction."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from pgbatch import AckEffects, AsyncClient, Client, EnqueueRequest
from tests.conftest import TestDatabase
from tests.helpers import collect_notifies, listen, open_client, scalar

ROOT = Path(__file__).resolve().parent.parent


def test_generated_sync_client_is_up_to_date() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_sync.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr or proc.stdout


def public_methods(cls: type) -> dict[str, Any]:
    return {name: getattr(cls, name) for name in dir(cls)
            if not name.startswith("_") and callable(getattr(cls, name))}


def normalise(annotation: Any) -> str:
    return str(annotation).replace("Async", "")


def test_sync_and_async_clients_expose_the_same_methods_and_parameters() -> None:
    sync, aio = public_methods(Client), public_methods(AsyncClient)
    assert set(sync) == set(aio)
    assert len(sync) >= 25
    for name in sorted(sync):
        s_sig, a_sig = inspect.signature(sync[name]), inspect.signature(aio[name])
        s_params = [(p.name, p.kind, p.default, normalise(p.annotation))
                    for p in s_sig.parameters.values()]
        a_params = [(p.name, p.kind, p.default, normalise(p.annotation))
                    for p in a_sig.parameters.values()]
        assert s_params == a_params, name
        assert normalise(s_sig.return_annotation) == normalise(a_sig.return_annotation), name
        if name not in ("connect",):
            assert inspect.iscoroutinefunction(aio[name]), f"AsyncClient.{name} is not async"
            assert not inspect.iscoroutinefunction(sync[name]), f"Client.{name} is async"


def test_async_client_enqueue_claim_ack(db: TestDatabase) -> None:
    async def main() -> None:
        client = await AsyncClient.connect(db.dsn, min_size=1, max_size=2)
        try:
            job_id = await client.enqueue("aq", {"hello": "world"}, priority=3)
            [job] = await client.claim("aq", 5)
            assert (job.id, job.payload, job.priority, job.attempt) == (
                job_id, {"hello": "world"}, 3, 1)
            follow_ups = await client.ack(job.id, job.claim_token, AckEffects(
                enqueue=[EnqueueRequest("aq2", {"n": 2})], kv_put={"k": "v"}))
            assert len(follow_ups) == 1
            assert await client.kv_get("k") == "v"
            [stats] = await client.queue_stats("aq")
            assert (stats.pending, stats.claimed, stats.done) == (0, 0, 1)
            [nxt] = await client.claim("aq2")
            assert nxt.id == follow_ups[0]
            assert await client.nack(nxt.id, nxt.claim_token, error={"m": "x"}) == "pending"
        finally:
            await client.close()

    asyncio.run(main())


def test_sync_client_enqueue_claim_ack(db: TestDatabase) -> None:
    with open_client(db.dsn) as client:
        job_id = client.enqueue("sq", [1, 2, 3])
        [job] = client.claim("sq")
        assert job.id == job_id
        assert job.payload == [1, 2, 3]
        assert client.ack(job.id, job.claim_token) == []
        [stats] = client.queue_stats("sq")
        assert stats.done == 1


def test_enqueue_in_a_rolled_back_caller_transaction_leaves_no_job(db: TestDatabase) -> None:
    watcher = db.connect()
    channel = str(scalar(watcher, "select pgbatch.channel_name('tx')"))
    listener = db.connect()
    listen(listener, channel)
    caller = db.connect(autocommit=False)
    with open_client(db.dsn) as client:
        with caller.transaction():
            client.enqueue("tx", {"order": 1}, conn=caller)
            client.enqueue_many([EnqueueRequest("tx"), EnqueueRequest("tx")], conn=caller)
            assert scalar(caller, "select count(*) from pgbatch.job") == 3
            raise psycopg.Rollback  # the application's transaction fails
        assert scalar(watcher, "select count(*) from pgbatch.job") == 0
        assert collect_notifies(listener, watcher, channel) == []
        # committed, the same calls create the jobs (and wake listeners at commit)
        with caller.transaction():
            client.enqueue("tx", {"order": 2}, conn=caller)
        assert scalar(watcher, "select count(*) from pgbatch.job") == 1
        assert collect_notifies(listener, watcher, channel) == ["1"]


def test_async_enqueue_in_a_rolled_back_caller_transaction_leaves_no_job(
    db: TestDatabase,
) -> None:
    async def main() -> None:
        client = await AsyncClient.connect(db.dsn, min_size=1, max_size=2)
        caller = await psycopg.AsyncConnection.connect(db.dsn)
        try:
            await client.enqueue("atx", conn=caller)
            await caller.rollback()
            assert all(s.pending == 0 for s in await client.queue_stats("atx"))
            await client.enqueue("atx", conn=caller)
            await caller.commit()
            [stats] = await client.queue_stats("atx")
            assert stats.pending == 1
        finally:
            await caller.close()
            await client.close()

    asyncio.run(main())
