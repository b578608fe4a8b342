"""Maintenance services: registered by an App, run on the leader only or on every node as
declared, each on its own interval; a failing one is retried with backoff and stops nothing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from pgbatch import App, MaintenanceConfig, MaintenanceContext, MaintenanceService, Worker
from pgbatch._aio_client import AsyncClient
from pgbatch.worker.maintenance import Maintenance
from pgbatch.worker.services import backoff_delay
from tests.conftest import TestDatabase
from tests.helpers import expire_lease, job_row
from tests.worker_harness import LoopThread, enqueue_jobs, wait_until


@dataclass
class Runs:
    """Runs of the test services (appended on the workers' loop; read with ``lt.call``)."""

    leader: list[tuple[str, bool]] = field(default_factory=list)  # (node, holds_lead)
    node: list[str] = field(default_factory=list)

    def count(self, node_id: str) -> int:
        return sum(1 for n in self.node if n == node_id)


def _app_with_services(dsn: str, runs: Runs) -> App:
    app = App(dsn)

    @app.task(queue="svc")
    def noop() -> None:
        return None

    @app.maintenance_service(interval=0.1, scope="leader")
    async def leader_only(ctx: MaintenanceContext) -> None:
        runs.leader.append((ctx.node_id, await ctx.holds_lead()))

    @app.maintenance_service(interval=0.1, scope="node", name="per_node")
    async def per_node(ctx: MaintenanceContext) -> None:
        runs.node.append(ctx.node_id)

    return app


def test_a_leader_only_service_runs_on_the_leader_only_and_a_per_node_one_on_every_node(
        db: TestDatabase) -> None:
    runs = Runs()
    app = _app_with_services(db.dsn, runs)
    cfg = MaintenanceConfig(interval=0.1, leader_lease=1.0)
    workers = [Worker(app, concurrency=1, node_id=f"svc-{i}", poll_interval=30,
                      maintenance_config=cfg) for i in range(2)]
    names = [s.name for s in app.maintenance_services]
    assert names == [f"{__name__}._app_with_services.<locals>.leader_only", "per_node"]
    try:
        with LoopThread() as lt:
            for w in workers:
                lt.start(w)

            def leader() -> Worker | None:
                found = lt.call(lambda: [w for w in workers
                                         if w.maintenance is not None and w.maintenance.is_leader])
                return found[0] if len(found) == 1 else None

            first = wait_until(leader, 10, "one leader")
            assert first is not None
            other = next(w for w in workers if w is not first)
            start = lt.call(lambda: len(runs.leader))

            def enough() -> bool:
                leader_runs, node_runs = lt.call(
                    lambda: (len(runs.leader), [runs.count(w.node_id) for w in workers]))
                return leader_runs >= start + 5 and min(node_runs) >= 5
            wait_until(enough, 10, "five more leader-only runs and five per-node runs on each node")
            leader_runs = lt.call(lambda: list(runs.leader))
            # every leader-only run happened on the node the database says leads
            assert {node for node, _ in leader_runs} == {first.node_id}
            assert all(holds for _, holds in leader_runs)
            # the built-in services run alongside, per their own scope
            stats = lt.call(lambda: {w.node_id: w.maintenance.stats if w.maintenance else None
                                     for w in workers})
            follower_stats = stats[other.node_id]
            assert follower_stats is not None
            assert follower_stats.services["heartbeat"].runs >= 1
            assert follower_stats.services["reap_expired"].runs == 0
            assert follower_stats.services[names[0]].runs == 0
            assert follower_stats.services["per_node"].runs >= 5

            # the leader stops: the leader-only service moves to the other node
            lt.stop(first)
            mark = lt.call(lambda: len(runs.leader))
            wait_until(lambda: lt.call(lambda: [n for n, _ in runs.leader[mark:]]).count(
                other.node_id) >= 3, 10, "the leader-only service to run on the new leader")
            after = lt.call(lambda: runs.leader[mark:])
            assert {node for node, _ in after} == {other.node_id}
            assert all(holds for _, holds in after)
    finally:
        app.close()


def test_a_failing_service_is_retried_with_backoff_and_stops_neither_the_others_nor_the_worker(
        db: TestDatabase, caplog: pytest.LogCaptureFixture) -> None:
    conn = db.connect()
    app = App(db.dsn)
    attempts: list[float] = []

    @app.task(queue="fail-svc")
    def noop() -> None:
        return None

    @app.maintenance_service(interval=0.05, name="flaky")
    async def flaky(ctx: MaintenanceContext) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 4:
            raise RuntimeError(f"flaky failure {len(attempts)}")

    worker = Worker(app, concurrency=1, node_id="fail-node", poll_interval=30,
                    maintenance_config=MaintenanceConfig(interval=0.05, leader_lease=1.0))
    try:
        with caplog.at_level(logging.INFO, logger="pgbatch.maintenance"), LoopThread() as lt:
            lt.start(worker)
            wait_until(lambda: lt.call(lambda: len(attempts)) >= 6, 20,
                       "the flaky service to fail four times and then succeed twice")
            # meanwhile the other services kept running: an expired claim is reaped
            (jid,) = enqueue_jobs(conn, "side", "nobody.runs.this")
            conn.execute("select id from pgbatch.claim('side', 1, '1 hour', 'gone')")
            expire_lease(conn, jid)
            wait_until(lambda: (job_row(conn, jid) or {}).get("state") == "pending", 10,
                       "the expired claim to be reaped")
            stats = lt.call(lambda: worker.maintenance.stats.services["flaky"]
                            if worker.maintenance else None)
            assert stats is not None
            assert (stats.failures, stats.consecutive_failures) == (4, 0)
            assert stats.runs >= 2
            assert stats.last_error == "RuntimeError: flaky failure 4"
            assert not lt.call(worker._stopping.is_set)  # the worker goes on
            lt.stop(worker)
    finally:
        app.close()
    # retries backed off: 1, 2, 4 and 8 intervals after the failures
    gaps = [b - a for a, b in itertools.pairwise(attempts[:5])]
    for gap, expected in zip(gaps, (0.05, 0.1, 0.2, 0.4), strict=True):
        assert gap >= expected * 0.95, gaps
    messages = [r.getMessage() for r in caplog.records if r.name == "pgbatch.maintenance"]
    assert sum("maintenance service flaky failed" in m for m in messages) == 3  # 1st, 2nd, 4th
    assert any("flaky recovered after 4 failures" in m for m in messages)
    first = next(r for r in caplog.records if "service flaky failed;" in r.getMessage())
    assert first.exc_info is not None  # the traceback, once per streak


def test_backoff_doubles_from_the_interval_up_to_the_cap() -> None:
    assert [backoff_delay(1.0, n, 60.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(120.0, 5, 60.0) == 120.0  # never below the interval
    assert backoff_delay(0.5, 10_000, 60.0) == 60.0


async def _noop_service(ctx: MaintenanceContext) -> None:
    return None


def _sync_service(ctx: MaintenanceContext) -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "", "interval": 1.0}, ValueError, "non-empty name"),
        ({"name": "  ", "interval": 1.0}, ValueError, "non-empty name"),
        ({"name": "x", "interval": 0.0}, ValueError, "interval"),
        ({"name": "x", "interval": -1.0}, ValueError, "interval"),
        ({"name": "x", "interval": float("inf")}, ValueError, "interval"),
        ({"name": "x", "interval": float("nan")}, ValueError, "interval"),
        ({"name": "x", "interval": 1.0, "scope": "everywhere"}, ValueError, "scope"),
        ({"name": "x", "interval": 1.0, "run": _sync_service}, TypeError, "async function"),
    ],
)
def test_a_malformed_service_is_refused(kwargs: dict[str, Any], error: type[Exception],
                                        match: str) -> None:
    args = {"run": _noop_service, **kwargs}
    with pytest.raises(error, match=match):
        MaintenanceService(**args)


def test_service_names_are_unique_per_app_and_per_loop(db: TestDatabase) -> None:
    app = App(db.dsn)
    app.add_maintenance_service(MaintenanceService("mine", 1.0, _noop_service))
    with pytest.raises(ValueError, match="already registered"):
        app.add_maintenance_service(MaintenanceService("mine", 5.0, _noop_service, "node"))

    async def check() -> None:
        client = await AsyncClient.connect(db.dsn, max_size=1)
        try:
            m = Maintenance(db.dsn, client, "n", uuid.uuid4(), services=app.maintenance_services)
            assert [s.name for s in m.services] == [
                "heartbeat", "reap_expired", "announce_due", "compact_counters",
                "sweep_retention", "vacuum", "purge_batch_history", "resume_due_executions",
                "expire_gates",
                "tick_schedules", "mine"]
            with pytest.raises(ValueError, match="already registered"):
                m.register(MaintenanceService("reap_expired", 1.0, _noop_service))
            with pytest.raises(KeyError):
                await m.run_now("nothing-by-that-name")
        finally:
            await client.close()
    asyncio.run(check())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 0}, "interval"),
        ({"leader_lease": 0.5}, "leader_lease"),
        ({"leader_lease": 7200}, "leader_lease"),
        ({"sweep_every": 0}, "sweep_every"),
        ({"parallel_services": 0}, "parallel_services"),
    ],
)
def test_a_bad_maintenance_config_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MaintenanceConfig(**kwargs)


def test_the_lease_is_renewed_at_least_three_times_per_lease() -> None:
    assert MaintenanceConfig(interval=1.0, leader_lease=5.0).renew_every == 1.0
    assert MaintenanceConfig(interval=30.0, leader_lease=6.0).renew_every == 2.0


def test_the_lease_is_renewed_once_per_tick_however_often_services_run(db: TestDatabase) -> None:
    """Services that finish often wake the loop, but only a tick renews the lease."""
    runs: list[float] = []

    async def often(ctx: MaintenanceContext) -> None:
        runs.append(time.monotonic())

    async def scenario() -> tuple[int, float]:
        client = await AsyncClient.connect(db.dsn, max_size=3)
        boot = uuid.uuid4()
        await client.register_node("often-node", boot, {})
        cfg = MaintenanceConfig(interval=0.2, leader_lease=1.0)
        m = Maintenance(db.dsn, client, "often-node", boot, cfg,
                        services=[MaintenanceService("often", 0.005, often, "node")])
        started = time.monotonic()
        task = asyncio.create_task(m.run())
        try:
            while len(runs) < 60:
                await asyncio.sleep(0.01)
        finally:
            elapsed = time.monotonic() - started
            ticks = m.stats.ticks
            m.stop()
            await task
            await client.close()
        return ticks, elapsed

    ticks, elapsed = asyncio.run(scenario())
    assert ticks <= elapsed / 0.2 + 2, (ticks, elapsed)
