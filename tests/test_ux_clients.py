"""``app.client`` and ``app.async_client``: one shape (two properties), the old spelling kept.

Both are properties that open their pool at first use; ``await app.aclient()``
still returns the async client, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import asyncio

import pytest

import pgbatch
from pgbatch import AsyncClient, Client
from tests.conftest import TestDatabase


def test_both_clients_are_properties_opened_at_first_use(db: TestDatabase) -> None:
    app = pgbatch.App(db.dsn, pool_size=1)
    try:
        assert isinstance(app.client, Client)
        aclient = app.async_client  # got outside any event loop
        assert isinstance(aclient, AsyncClient)
        assert app.async_client is aclient

        @app.task(queue="shape", name="shape.noop")
        def noop() -> None:
            return None

        async def use() -> pgbatch.JobInfo:
            jid = await noop.aenqueue({})
            async with app.async_client.pool.connection() as conn:  # the pool itself, too
                await conn.execute("select 1")
            return await app.async_client.get_job(jid)

        async def use_and_close() -> pgbatch.JobInfo:
            try:
                return await use()
            finally:
                await app.aclose()

        job = asyncio.run(use_and_close())
        assert (job.queue, job.state, job.task) == ("shape", "pending", "shape.noop")
    finally:
        app.close()


def test_aclient_still_works_with_a_deprecation_warning(db: TestDatabase) -> None:
    app = pgbatch.App(db.dsn, pool_size=1)

    async def old_spelling() -> tuple[AsyncClient, AsyncClient]:
        try:
            with pytest.warns(DeprecationWarning, match="app.async_client"):
                client = await app.aclient()
            stats = await client.queue_stats()
            assert isinstance(stats, list)
            return client, app.async_client
        finally:
            await app.aclose()

    old, new = asyncio.run(old_spelling())
    assert old is new
