"""SIGTERM: finish what fits in the grace period, release the rest; a second one exits at once."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from pgbatch import Worker
from tests.conftest import TestDatabase
from tests.helpers import archive_row, job_row, scalar
from tests.worker_harness import Event, LoopThread, ProcGroup, app_on, enqueue_jobs


def test_sigterm_acks_jobs_that_finish_within_the_grace_and_releases_the_others_unconsumed(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    with ProcGroup(db.dsn, tmp_path) as group:
        wp = group.spawn("w", queue="grace", node_id="grace-node", concurrency=4,
                         shutdown_grace=2, poll_interval=30)
        wp.wait_event("idle")
        short = enqueue_jobs(conn, "grace", "sleep", {"seconds": 0.5}, n=2)
        long = enqueue_jobs(conn, "grace", "sleep", {"seconds": 60}, n=2)
        for jid in short + long:
            wp.wait_event("start", pred=_is_start_of(jid))

        sent = time.monotonic()
        wp.signal(signal.SIGTERM)
        code = wp.wait_exit(10)
        elapsed = time.monotonic() - sent
        report = wp.exit_report()

    assert code == 0, wp.describe()
    # the long jobs had the whole grace period, and nothing more
    assert 1.9 <= elapsed < 2.0 + 1.5, elapsed
    for jid in short:
        archived = archive_row(conn, jid)
        assert archived is not None, jid
        assert archived["state"] == "done", jid
    for jid in long:
        row = job_row(conn, jid)
        assert row is not None
        # back to pending, the attempt it had consumed given back
        assert (row["state"], row["attempt"], row["claim_token"]) == ("pending", 0, None)
    assert report["stats"]["succeeded"] == 2
    assert report["stats"]["released"] == 2
    assert report["error"] is None


def test_a_second_sigterm_exits_at_once_leaving_the_claims_for_the_reaper(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    with ProcGroup(db.dsn, tmp_path) as group:
        wp = group.spawn("w", queue="abort", node_id="abort-node", concurrency=2,
                         shutdown_grace=30, poll_interval=30, no_maintenance=True)
        wp.wait_event("idle")
        jobs: list[UUID] = enqueue_jobs(conn, "abort", "sleep", {"seconds": 60}, n=2)
        for jid in jobs:
            wp.wait_event("start", pred=_is_start_of(jid))

        wp.signal(signal.SIGTERM)
        # signals do not queue: send the second only once the first was handled
        wp.wait_event("log", pred=lambda e: "stopping" in e["msg"])
        sent = time.monotonic()
        wp.signal(signal.SIGTERM)
        code = wp.wait_exit(10)
        elapsed = time.monotonic() - sent

    assert code == 143, wp.describe()  # 128 + SIGTERM, the shell's convention
    assert elapsed < 1.5, elapsed  # not the 30 s grace
    for jid in jobs:
        row = job_row(conn, jid)
        assert row is not None
        assert (row["state"], row["attempt"], row["claimed_by"]) == ("claimed", 1, "abort-node")
    # they stay claimed until their lease expires and the reaper requeues them
    conn.execute("update pgbatch.job set lease_expires_at = now() - interval '1 second'"
                 " where state = 'claimed'")
    assert scalar(conn, "select pgbatch.reap_expired()") == 2
    for jid in jobs:
        row = job_row(conn, jid)
        assert row is not None
        assert (row["state"], row["attempt"]) == ("pending", 1)


def test_a_sync_task_that_outlives_its_stopped_worker_finishes_quietly(
        db: TestDatabase) -> None:
    conn = db.connect()
    entered, release = threading.Event(), threading.Event()
    with app_on(db.dsn) as app:
        @app.task(queue="outlive")
        def stubborn() -> None:
            entered.set()
            assert release.wait(30)

        worker = Worker(app, concurrency=1, poll_interval=30, shutdown_grace=0.1,
                        maintenance=False)
        with LoopThread() as lt:
            lt.start(worker)
            jid = stubborn.defer()
            assert entered.wait(10)
            lt.stop(worker)  # the grace passes: the job is released, its thread runs on
        # the worker's loop is closed now; the task finishing must not raise in its
        # thread (pytest reports unhandled thread exceptions as errors)
        release.set()
        threads = worker._threads  # private: join the task thread to see it end
        assert threads is not None
        assert threads.shutdown(wait=True, timeout=10) == []
    row = job_row(conn, jid)
    assert row is not None
    assert (row["state"], row["attempt"]) == ("pending", 0)


def _is_start_of(job_id: UUID) -> Callable[[Event], bool]:
    """Whether an event is about ``job_id`` (for ``wait_event``'s ``pred``)."""
    return lambda event: bool(event["job"] == str(job_id))
