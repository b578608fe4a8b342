"""Leases: a long job that renews keeps its claim; one whose claim was reaped loses it cleanly."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from pgbatch import App, JobContext, MaintenanceConfig, Worker
from tests.conftest import TestDatabase
from tests.helpers import archive_row, counts, job_row, scalar
from tests.worker_harness import LoopThread, ProcGroup, enqueue_jobs, wait_until


def test_a_job_that_outlives_its_lease_but_renews_it_is_not_redelivered(
        db: TestDatabase) -> None:
    conn = db.connect()
    runs: list[tuple[str, int]] = []
    lock = threading.Lock()
    app = App(db.dsn)

    @app.task(queue="renew", lease=1.5, pass_context=True)
    def long_job(ctx: JobContext) -> None:
        with lock:
            runs.append((ctx.worker_id, ctx.attempt))
        time.sleep(5)  # more than three leases

    # two workers with eager maintenance: a lapsed lease would be reaped within 0.2 s
    # and the idle worker would run the job again
    cfg = MaintenanceConfig(interval=0.2)
    workers = [Worker(app, concurrency=1, node_id=f"renew-{i}", poll_interval=30,
                      maintenance_config=cfg) for i in range(2)]
    try:
        with LoopThread() as lt:
            for w in workers:
                lt.start(w)
            jid = long_job.defer()
            wait_until(lambda: counts(conn, "renew")["done"] == 1, 20, "the long job to finish")
            stats = [lt.call(lambda w=w: (w.stats.renewals, w.stats.lost_renewals,  # type: ignore[misc]
                                          w.maintenance.stats.reaped if w.maintenance else 0))
                     for w in workers]
    finally:
        app.close()

    assert len(runs) == 1, runs
    runner = next(i for i, w in enumerate(workers) if w.node_id == runs[0][0])
    renewals, lost, _ = stats[runner]
    assert renewals >= 3, stats  # every 0.5 s for 5 s
    assert lost == 0
    assert sum(s[2] for s in stats) == 0  # nothing was reaped
    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"]) == ("done", 1)


def test_a_worker_whose_claim_was_reaped_gets_claim_lost_and_keeps_working(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    opts = {"queue": "frozen", "lease": 1.5, "poll_interval": 30}
    with ProcGroup(db.dsn, tmp_path) as group:
        # a runs the job; it does no maintenance, so only b can reap it
        a = group.spawn("a", node_id="node-a", no_maintenance=True, **opts)
        a.wait_event("idle")
        (jid,) = enqueue_jobs(conn, "frozen", "sleep", {"seconds": 3, "attempts": [1]})
        a.wait_event("start", pred=lambda e: e["job"] == str(jid))

        # freeze a past its lease: it cannot renew; b reaps the claim and runs attempt 2
        a.signal(signal.SIGSTOP)
        b = group.spawn("b", node_id="node-b", maintenance_interval=0.2, **opts)
        b.wait_event("end", timeout=20, pred=lambda e: e["job"] == str(jid))
        wait_until(lambda: archive_row(conn, jid), 10, "the redelivered attempt to settle")
        a.signal(signal.SIGCONT)

        # a finishes attempt 1 and learns at settlement that the claim is gone
        a.wait_event("log", pred=lambda e: "lost claim" in e["msg"] and str(jid) in e["msg"])
        b.stop()
        # a goes on working: it alone serves the queue now
        (later,) = enqueue_jobs(conn, "frozen", "sleep", {"seconds": 0})
        wait_until(lambda: archive_row(conn, later), 10, "a to run a later job")
        report = a.stop()

    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"], archived["claimed_by"]) == \
        ("done", 2, "node-b")
    assert scalar(conn, "select count(*) from pgbatch.job_archive where id = %s", [jid]) == 1
    later_row = archive_row(conn, later)
    assert later_row is not None
    assert later_row["claimed_by"] == "node-a"
    assert [e["attempt"] for e in a.events_of("end") if e["job"] == str(jid)] == [1]
    assert report["settle"]["claim_lost"] == 1
    assert report["settle"]["acked"] == 1  # the later job
    assert report["error"] is None


def test_two_workers_in_one_process_with_default_node_ids_do_not_release_each_others_claims(
        db: TestDatabase) -> None:
    conn = db.connect()
    entered, release = threading.Event(), threading.Event()
    app = App(db.dsn)

    @app.task(queue="pair-a")
    def blocked() -> None:
        entered.set()
        assert release.wait(30)

    @app.task(queue="pair-b")
    def other() -> None:
        return None

    first = Worker(app, ["pair-a"], concurrency=1, poll_interval=30, maintenance=False)
    second = Worker(app, ["pair-b"], concurrency=1, poll_interval=30, maintenance=False)
    try:
        with LoopThread() as lt:
            lt.start(first)
            jid = blocked.defer()
            assert entered.wait(10)
            claimed = job_row(conn, jid)
            assert claimed is not None
            assert claimed["state"] == "claimed"
            # registering the second worker must not end the first one's claims
            lt.start(second)
            assert first.node_id != second.node_id
            row = job_row(conn, jid)
            assert row is not None
            assert (row["state"], row["claim_token"]) == ("claimed", claimed["claim_token"])
            release.set()
            wait_until(lambda: archive_row(conn, jid), 10, "the job to be acked")
    finally:
        release.set()
        app.close()
    archived = archive_row(conn, jid)
    assert archived is not None
    assert (archived["state"], archived["attempt"]) == ("done", 1)
