"""Failover: SIGKILL the primary, promote its synchronous standby, and nothing is lost.

Two real servers (``tests/replication.py``: ``initdb``, ``pg_basebackup -R``,
streaming replication, ``synchronous_standby_names = '*'``, loopback ports),
two worker processes (``tests/worker_proc.py``, the transactional ``record``
task) and a producer thread (``Client.enqueue``), all on the libpq multi-host
DSN of both servers with ``target_session_attrs=read-write``. While jobs flow,
the primary's postmaster is SIGKILLed; the standby is promoted 1 s later in one
case and 15 s later in the other. Then, from the rows of the new primary:

- every enqueue the producer saw acknowledged exists (none lost), and the
  producer saw no error (its retries covered the outage);
- every job is done, and the ``record`` task's row (written in the ack's
  transaction) exists exactly once per job: no duplicate transactional effect;
- each worker committed a job within 2 s of the promotion (the ``at`` column of
  ``record``'s rows is the database's ``clock_timestamp()``, on this host's clock);
- a claim left behind by a holder that never comes back (made on the old
  primary, replicated) was reaped on the new one: the leader is back and reaping;
- each worker logged the outage once and the recovery once (``pgbatch.reconnect``),
  and nothing at ERROR; no worker exited.

The waits between kill and promotion are the scenario itself, not a way to
synchronise: everything else waits on rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pgbatch import Client
from tests.replication import ReplicatedPair, replicated_pair
from tests.worker_harness import ProcGroup, WorkerProcess, wait_until

Conn = psycopg.Connection[Any]

QUEUE = "failover"
#: A queue no worker serves: the abandoned claim of the reaping check lives there.
GHOST_QUEUE = "failover.ghost"
#: ``record``'s table, without a primary key so that a duplicate effect would show.
DONE_TABLE_DDL = ("create table worker_test_done (job_id uuid not null, attempt int not null,"
                  " node text, at timestamptz not null default clock_timestamp())")
#: The most a worker may take to commit a job again after the promotion.
RESUME_WITHIN = 2.0
#: Jobs waiting when the primary dies, so every worker has work right after the promotion.
BACKLOG = 300
JOB = {"task": "record", "kwargs": {"seconds": 0.02}}
WORKER_OPTIONS: dict[str, Any] = {
    "queue": QUEUE, "concurrency": 4, "lease": 3, "poll_interval": 1.0,
    "maintenance_interval": 0.5, "leader_lease": 2.0}


class Producer:
    """A thread that enqueues one job at a time until stopped, keeping every acknowledged id."""

    def __init__(self, dsn: str) -> None:
        self.client = Client.connect(dsn, min_size=1, max_size=2)
        self.acked: list[tuple[UUID, float]] = []  # (id, time.time() of the acknowledgement)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgb-test-producer")

    def start(self) -> Producer:
        """Start enqueuing."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self.client.enqueue(QUEUE, JOB)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
                return
            self.acked.append((job_id, time.time()))
            self._stop.wait(0.02)  # the load's pace (about 50 jobs a second)

    def stop(self) -> None:
        """Stop and close the client (once; later calls do nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(120)
        self.client.close()
        assert not self._thread.is_alive(), "the producer did not stop"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the worker processes' stderr goes."""
    return tmp_path


def prepare(pair: ReplicatedPair) -> None:
    """``record``'s table on the primary (replicated like everything else)."""
    with psycopg.connect(pair.primary.dsn("pgbatch"), autocommit=True) as c:
        c.execute(DONE_TABLE_DDL)


def abandoned_claim(conn: Conn) -> UUID:
    """A job claimed (lease 2 s) by a holder that never settles it; committed synchronously."""
    row = conn.execute("select pgbatch.enqueue(%s, %s)", [GHOST_QUEUE, Jsonb(JOB)]).fetchone()
    assert row is not None
    conn.execute("select * from pgbatch.claim(%s, 1, interval '2 seconds', 'gone-for-good')",
                 [GHOST_QUEUE])
    return UUID(str(row[0]))


def backlog(conn: Conn, n: int) -> list[UUID]:
    """``n`` jobs in one enqueue_many (committed synchronously)."""
    row = conn.execute("select pgbatch.enqueue_many(%s)",
                       [Jsonb([{"queue": QUEUE, "payload": JOB}] * n)]).fetchone()
    assert row is not None
    return [UUID(str(x)) for x in row[0]]


def done_rows(conn: Conn) -> dict[UUID, int]:
    """Rows of ``record``'s table per job."""
    return {UUID(str(j)): int(n) for j, n in conn.execute(
        "select job_id, count(*) from worker_test_done group by job_id").fetchall()}


def first_commit_after(conn: Conn, node: str, t: float) -> float | None:
    """Unix time of the node's first ``record`` row after ``t``, or None."""
    row = conn.execute(
        "select extract(epoch from min(at))::float8 from worker_test_done"
        " where node = %s and at > to_timestamp(%s)", [node, t]).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def reconnect_warnings(wp: WorkerProcess) -> list[str]:
    """WARNING lines of pgbatch.reconnect the worker logged."""
    return [e["msg"] for e in wp.events_of("log")
            if e.get("logger") == "pgbatch.reconnect" and e.get("level") == "WARNING"]


def errors_logged(wp: WorkerProcess) -> list[str]:
    """ERROR (or worse) lines the worker logged."""
    return [f"{e.get('logger')}: {e['msg']}" for e in wp.events_of("log")
            if e.get("level") in ("ERROR", "CRITICAL")]


@pytest.fixture
def sync_pair() -> Iterator[ReplicatedPair]:
    """A primary and its synchronous standby, fresh for each scenario."""
    with replicated_pair(synchronous=True) as pair:
        prepare(pair)
        yield pair


@pytest.mark.parametrize("promote_after", [1.0, 15.0], ids=["promote-after-1s",
                                                            "promote-after-15s"])
def test_failover_to_synchronous_standby(sync_pair: ReplicatedPair, workdir: Path,
                                         promote_after: float) -> None:
    """SIGKILL the primary, promote the standby after ``promote_after`` s: nothing lost."""
    pair = sync_pair
    dsn = pair.multi_dsn()
    with ProcGroup(dsn, workdir) as group, \
            psycopg.connect(pair.primary.dsn("pgbatch"), autocommit=True) as old:
        workers = [group.spawn(f"w{i}", node_id=f"w{i}", **WORKER_OPTIONS) for i in (1, 2)]
        for wp in workers:
            wp.wait_event("idle", timeout=60)
        producer = Producer(dsn).start()
        try:
            # jobs flow: a few acknowledged enqueues, and each worker has committed some
            wait_until(lambda: len(producer.acked) >= 20, 60, "the producer's first enqueues")
            wait_until(lambda: all(first_commit_after(old, f"w{i}", 0) for i in (1, 2)), 60,
                       "both workers committing")
            ghost = abandoned_claim(old)
            waiting = backlog(old, BACKLOG)
            pair.kill_primary()
            time.sleep(promote_after)  # the outage being tested
            pair.promote()
            promoted_at = time.time()
            with psycopg.connect(pair.standby.dsn("pgbatch"), autocommit=True) as new:
                assert new.execute("select pg_is_in_recovery()").fetchone() == (False,)
                # every worker commits jobs again, soon
                for wp in workers:
                    resumed = wait_until(partial(first_commit_after, new, wp.name, promoted_at),
                                         60, f"{wp.name} committing after the promotion")
                    assert resumed is not None
                    print(f"{wp.name} committed again {resumed - promoted_at:.2f}s after the "
                          f"promotion ({promote_after:g}s outage)")
                    assert resumed - promoted_at <= RESUME_WITHIN, (
                        f"{wp.name} resumed {resumed - promoted_at:.2f}s after the promotion\n"
                        f"{wp.describe()}")
                # the producer goes on, and saw no error
                wait_until(lambda: any(t > promoted_at for _, t in producer.acked) or
                           bool(producer.errors), 60, "an enqueue after the promotion")
                producer.stop()
                assert producer.errors == []
                first_ack = min(t for _, t in producer.acked if t > promoted_at)
                print(f"producer acknowledged again {first_ack - promoted_at:.2f}s after the "
                      "promotion")
                assert first_ack - promoted_at <= RESUME_WITHIN
                acked = [job_id for job_id, _ in producer.acked]
                # the abandoned claim is reaped by the leader on the new primary
                wait_until(lambda: new.execute(
                    "select state = 'pending' and claim_token is null from pgbatch.job"
                    " where id = %s", [ghost]).fetchone() == (True,), 30,
                    "the abandoned claim reaped")
                # nothing lost, nothing left undone, nothing applied twice
                expected = set(acked) | set(waiting)
                present = {UUID(str(r[0])) for r in new.execute(
                    "select id from pgbatch.job where id = any(%s) union all"
                    " select id from pgbatch.job_archive where id = any(%s)",
                    [list(expected), list(expected)]).fetchall()}
                assert expected - present == set(), "acknowledged enqueues lost"
                wait_until(lambda: expected <= set(done_rows(new)), 60,
                           "every job done")
                rows = done_rows(new)
                assert {j: n for j, n in rows.items() if n > 1} == {}, "duplicate effects"
                states: dict[str, int] = dict(new.execute(
                    "select state, count(*) from pgbatch.job_archive where id = any(%s)"
                    " group by state", [list(expected)]).fetchall())
                assert states == {"done": len(expected)}
        finally:
            producer.stop()
        for wp in workers:
            assert wp.alive(), wp.describe()
        reports = [wp.stop(timeout=60) for wp in workers]
    for wp, report in zip(workers, reports, strict=True):
        assert report["error"] is None, wp.describe()
        warnings = reconnect_warnings(wp)
        assert len(warnings) == 2, warnings
        assert warnings[0].startswith("database connection lost")
        assert warnings[1].startswith("database reachable again")
        assert errors_logged(wp) == [], wp.describe()
    assert sum(r["maintenance"]["reaped"] for r in reports) >= 1
