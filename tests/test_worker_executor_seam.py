"""The executor seam: a second kind of job (not a task) run by a real worker.

An executor registered with ``App.register_executor`` gets the jobs whose
payload names its kind. Its handler commits several fenced transactions
inside one claim (``ctx.fenced()``): each checks the claim token and extends
the lease in the same transaction, durably; one run after the claim was lost
fails with ``ClaimLost`` and changes nothing. Its context tells a shutdown
(stop requested, hand-off) from a cancel.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from pgbatch import ClaimLost, Worker
from pgbatch._types import ClaimedJob
from pgbatch.worker import Call, JobContext, Outcome, Release, UnknownHandler
from tests.conftest import TestDatabase
from tests.helpers import (
    archive_row,
    claim,
    claim_one,
    enqueue,
    expire_lease,
    job_row,
    raises_sqlstate,
    scalar,
)
from tests.worker_harness import LoopThread, app_on, wait_until

Conn = psycopg.Connection[Any]
Handler = Callable[[JobContext], Any]


class StepExecutor:
    """A minimal executor of kind ``"step"`` on one queue: one handler for every job."""

    def __init__(self, queue: str, handler: Handler, *, is_async: bool,
                 lease: timedelta = timedelta(hours=1),
                 claim_lease: timedelta = timedelta(seconds=30),
                 interrupt: bool = True) -> None:
        self.queue = queue
        self.handler = handler
        self.is_async = is_async
        self.lease = lease
        self.lease_on_claim = claim_lease
        self.interrupt = interrupt
        self.resolved: list[UUID] = []

    def queues(self) -> Sequence[str]:
        return [self.queue]

    def claim_lease(self, queue: str) -> timedelta | None:
        return self.lease_on_claim if queue == self.queue else None

    def resolve(self, job: ClaimedJob) -> Call:
        payload = job.payload if isinstance(job.payload, dict) else {}
        if payload.get("step") == "missing":
            raise UnknownHandler("no step named 'missing'", "UnknownStep")
        self.resolved.append(job.id)
        return Call(name=f"step:{payload.get('step')}", fn=self.handler, is_async=self.is_async,
                    lease=self.lease, interrupt=self.interrupt)


def _step_job(conn: Conn, queue: str, step: str) -> UUID:
    return enqueue(conn, queue, {"kind": "step", "step": step})


# -- two fenced commits in one claim, the second after the claim was lost ----------------

@pytest.mark.parametrize("is_async", [True, False], ids=["async", "sync"])
def test_a_second_kind_commits_fenced_chunks_and_a_chunk_after_the_lost_claim_changes_nothing(
        db: TestDatabase, is_async: bool) -> None:
    conn = db.connect()
    conn.execute("create table seam_chunks (job_id uuid, chunk int, primary key (job_id, chunk))")
    first_done, proceed = threading.Event(), threading.Event()
    proceed_async = asyncio.Event()  # set on the worker's loop
    seen: dict[str, Any] = {}

    def record_end(ctx: JobContext, exc: BaseException) -> None:
        seen["error"] = exc
        seen["claim_lost"] = ctx.claim_lost.is_set()
        seen["kind"] = ctx.kind
        seen["name"] = ctx.task_name

    async def step_async(ctx: JobContext) -> None:
        async with ctx.fenced() as tx:
            await tx.execute("insert into seam_chunks values (%s, 1)", [ctx.job_id])
        first_done.set()
        await proceed_async.wait()  # the test steals the claim meanwhile
        try:
            async with ctx.fenced() as tx:
                await tx.execute("insert into seam_chunks values (%s, 2)", [ctx.job_id])
        except ClaimLost as exc:
            record_end(ctx, exc)
            raise

    def step_sync(ctx: JobContext) -> None:
        with ctx.fenced_sync() as tx:
            tx.execute("insert into seam_chunks values (%s, 1)", [ctx.job_id])
        first_done.set()
        assert proceed.wait(30)
        try:
            with ctx.fenced_sync() as tx:
                tx.execute("insert into seam_chunks values (%s, 2)", [ctx.job_id])
        except ClaimLost as exc:
            record_end(ctx, exc)
            raise

    executor = StepExecutor("steps", step_async if is_async else step_sync, is_async=is_async)
    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor("step", executor)
        assert app.queues() == ["steps"]
        worker = lt.start(Worker(app, concurrency=1, poll_interval=30, maintenance=False))
        before = datetime.now(UTC)
        jid = _step_job(conn, "steps", "load")
        assert first_done.wait(10)

        # the first chunk committed, and its fence extended the lease to the handler's hour
        assert scalar(conn, "select array_agg(chunk) from seam_chunks") == [1]
        live = job_row(conn, jid)
        assert live is not None
        assert live["state"] == "claimed"
        assert live["lease_expires_at"] > before + timedelta(minutes=50)

        # the claim is lost: the lease expires, the reaper requeues it, a thief claims it
        assert expire_lease(conn, jid) == 1
        assert scalar(conn, "select pgbatch.reap_expired()") == 1
        (stolen,) = claim(conn, "steps", 1, "1 hour", "thief")
        assert (stolen["id"], stolen["attempt"]) == (jid, 2)
        proceed.set()
        lt.loop.call_soon_threadsafe(proceed_async.set)

        wait_until(lambda: lt.call(lambda: worker.stats.started == 1 and
                                   worker.runner is not None and worker.runner.stats.lost == 1),
                   10, "the handler to fail with ClaimLost")
        lost_count = lt.call(lambda: worker.runner.stats.lost if worker.runner is not None else -1)
        failed = lt.call(lambda: worker.stats.failed)

    assert isinstance(seen["error"], ClaimLost)
    assert seen["claim_lost"] is True
    assert (seen["kind"], seen["name"]) == ("step", "step:load")
    assert executor.resolved == [jid]
    assert (lost_count, failed) == (1, 0)
    # nothing of the second chunk, and the thief's claim untouched (not extended, not settled)
    assert scalar(conn, "select array_agg(chunk) from seam_chunks") == [1]
    row = job_row(conn, jid)
    assert row is not None
    assert (row["state"], row["claim_token"], row["claimed_by"], row["attempt"],
            row["lease_expires_at"]) == ("claimed", stolen["claim_token"], "thief", 2,
                                         stolen["lease_expires_at"])
    assert archive_row(conn, jid) is None


def test_a_handler_of_another_kind_acks_in_its_last_fenced_transaction(
        db: TestDatabase) -> None:
    conn = db.connect()
    conn.execute("create table seam_chunks (job_id uuid, chunk int, primary key (job_id, chunk))")

    async def step(ctx: JobContext) -> None:
        for chunk in (1, 2):
            async with ctx.fenced() as tx:
                await tx.execute("insert into seam_chunks values (%s, %s)", [ctx.job_id, chunk])
        async with ctx.fenced() as tx:
            await tx.execute("insert into seam_chunks values (%s, 3)", [ctx.job_id])
            await ctx.ack_in(tx)

    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor("step", StepExecutor("steps", step, is_async=True))
        worker = lt.start(Worker(app, concurrency=1, poll_interval=30, maintenance=False))
        jid = _step_job(conn, "steps", "all")
        missing = enqueue(conn, "steps", {"kind": "step", "step": "missing"}, max_attempts=1)
        unknown = enqueue(conn, "steps", {"kind": "no-such-kind"}, max_attempts=1)
        wait_until(lambda: archive_row(conn, jid), 10, "the step job to be acked")
        settler = worker.settler
        assert settler is not None
        wait_until(lambda: archive_row(conn, missing), 10, "the unresolvable job to die")
        wait_until(lambda: archive_row(conn, unknown), 10, "the job of an unknown kind to die")
        wait_until(lambda: lt.call(lambda: worker.stats.succeeded) == 1, 10,
                   "the runner to count the success")
        stats = lt.call(lambda: (settler.stats.acked, settler.stats.acked_in_transaction,
                                 settler.stats.nacked, worker.stats.succeeded))

    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"]) == ("done", 1)
    assert scalar(conn, "select array_agg(chunk order by chunk) from seam_chunks") == [1, 2, 3]
    assert stats == (1, 1, 2, 1)  # acked once, in its own transaction; not acked again
    missing_row = archive_row(conn, missing)
    assert missing_row is not None
    assert (missing_row["state"], missing_row["last_error"]["type"]) == ("dead", "UnknownStep")
    dead = archive_row(conn, unknown)
    assert dead is not None
    assert (dead["state"], dead["last_error"]["type"]) == ("dead", "UnknownHandler")


# -- stop requested is not cancelled -----------------------------------------------------

def test_stop_requested_and_cancelled_are_told_apart(db: TestDatabase) -> None:
    conn = db.connect()
    started: dict[str, threading.Event] = {n: threading.Event() for n in ("cancel", "stop")}
    stubborn_started, stubborn_go = threading.Event(), threading.Event()
    seen: dict[str, dict[str, bool]] = {}
    lock = threading.Lock()

    def flags(ctx: JobContext, **extra: bool) -> dict[str, bool]:
        return {"cancelled": ctx.cancelled.is_set(), "stop": ctx.stop_requested.is_set(),
                "released": ctx.released.is_set(), "lost": ctx.claim_lost.is_set(), **extra}

    async def control(ctx: JobContext) -> Outcome | None:
        name = ctx.job.payload["step"]
        told = asyncio.Event()
        loop = asyncio.get_running_loop()
        def tell() -> None:
            loop.call_soon_threadsafe(told.set)

        ctx.on_stop(tell)
        started[name].set()
        try:
            await told.wait()
        except asyncio.CancelledError:
            with lock:
                seen[name] = flags(ctx, interrupted=True)
            raise
        with lock:
            seen[name] = flags(ctx, interrupted=False)
        return Release("stop requested: hand-off")

    def stubborn(ctx: JobContext) -> None:
        stubborn_started.set()
        assert stubborn_go.wait(30)
        with lock:
            seen["stubborn"] = flags(ctx)

    # renewals every 0.2 s: the cancellation is seen within one
    ctl = StepExecutor("ctl", control, is_async=True, lease=timedelta(seconds=1),
                       claim_lease=timedelta(seconds=1))
    slow = StepExecutor("slow", stubborn, is_async=False, lease=timedelta(seconds=1),
                        claim_lease=timedelta(seconds=1))
    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor("step", ctl)
        app.register_executor("slow", slow)
        with pytest.raises(ValueError, match="already registered"):
            app.register_executor("step", ctl)
        with pytest.raises(ValueError, match="already registered"):
            app.register_executor("task", ctl)
        worker = lt.start(Worker(app, concurrency=3, poll_interval=30, maintenance=False,
                                 shutdown_grace=0.5))
        to_cancel = _step_job(conn, "ctl", "cancel")
        to_stop = _step_job(conn, "ctl", "stop")
        kept = enqueue(conn, "slow", {"kind": "slow"})
        for ev in (*started.values(), stubborn_started):
            assert ev.wait(10)

        assert scalar(conn, "select pgbatch.cancel_job(%s)", [to_cancel]) == "cancel_requested"
        wait_until(lambda: archive_row(conn, to_cancel), 10, "the cancelled job to end")
        assert "stop" not in seen

        lt.stop(worker)  # stop requested: one hands off at once, the stubborn one is released
        stubborn_go.set()
        wait_until(lambda: "stubborn" in seen, 10, "the stubborn handler to return")
        released = lt.call(lambda: worker.settler.stats.released if worker.settler else 0)

    assert seen["cancel"] == {"cancelled": True, "stop": False, "released": False,
                              "lost": False, "interrupted": True}
    assert seen["stop"] == {"cancelled": False, "stop": True, "released": False,
                            "lost": False, "interrupted": False}
    assert seen["stubborn"] == {"cancelled": False, "stop": True, "released": True,
                                "lost": False}
    cancelled = archive_row(conn, to_cancel)
    assert cancelled is not None
    assert cancelled["state"] == "cancelled"
    for jid in (to_stop, kept):  # handed off: pending again, the attempt given back
        row = job_row(conn, jid)
        assert row is not None
        assert (row["state"], row["attempt"], row["claim_token"]) == ("pending", 0, None)
    assert released == 2


# -- the SQL fence -----------------------------------------------------------------------

@pytest.fixture
def tx_conn(db: TestDatabase) -> Conn:
    """A connection that is not autocommit: the test drives its own transactions."""
    return db.connect(autocommit=False)


def test_fence_claim_extends_the_lease_and_keeps_the_commit_durable(tx_conn: Conn) -> None:
    enqueue(tx_conn, "f")
    tx_conn.commit()
    job = claim_one(tx_conn, "f")
    assert scalar(tx_conn, "show synchronous_commit") == "off"  # the claim relaxed it
    row = tx_conn.execute("select * from pgbatch.fence_claim(%s, %s, '2 hours')",
                          [job["id"], job["claim_token"]]).fetchone()
    assert row is not None
    # a claim and a fence in one transaction: the fence restores durability
    assert scalar(tx_conn, "show synchronous_commit") == "on"
    tx_conn.commit()
    expires, cancel_requested = row
    assert expires > job["lease_expires_at"] + timedelta(hours=1)
    assert cancel_requested is False

    tx_conn.execute("create table fenced_writes (n int)")
    tx_conn.commit()
    tx_conn.execute("insert into fenced_writes values (1)")
    tx_conn.execute("select * from pgbatch.fence_claim(%s, %s)", [job["id"], job["claim_token"]])
    assert scalar(tx_conn, "show synchronous_commit") == "on"  # never relaxed
    tx_conn.commit()

    tx_conn.execute("select pgbatch.cancel_job(%s)", [job["id"]])
    tx_conn.commit()
    row = tx_conn.execute("select * from pgbatch.fence_claim(%s, %s)",
                          [job["id"], job["claim_token"]]).fetchone()
    assert row is not None
    assert row[1] is True  # told, not refused
    tx_conn.commit()


def test_fence_claim_refuses_a_lost_claim_a_stale_token_and_a_bad_lease(tx_conn: Conn) -> None:
    enqueue(tx_conn, "f")
    tx_conn.commit()
    job = claim_one(tx_conn, "f")
    tx_conn.commit()
    before = job_row(tx_conn, job["id"])
    for lease in ("0 seconds", "-1 second"):
        with raises_sqlstate("PB007", "invalid lease"):
            tx_conn.execute("select * from pgbatch.fence_claim(%s, %s, %s::interval)",
                            [job["id"], job["claim_token"], lease])
        tx_conn.rollback()
    with raises_sqlstate("PB003", "not found"):
        tx_conn.execute("select * from pgbatch.fence_claim(gen_random_uuid(), %s)",
                        [job["claim_token"]])
    tx_conn.rollback()
    expire_lease(tx_conn, job["id"])
    tx_conn.execute("select pgbatch.reap_expired()")
    tx_conn.commit()
    reaped = job_row(tx_conn, job["id"])
    with raises_sqlstate("PB001", "claim lost"):
        tx_conn.execute("select * from pgbatch.fence_claim(%s, %s)",
                        [job["id"], job["claim_token"]])
    tx_conn.rollback()
    assert before is not None
    assert reaped is not None
    assert job_row(tx_conn, job["id"]) == reaped
    tx_conn.commit()
