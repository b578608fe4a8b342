"""Database helpers shared by every test module (not fixtures: import them).

The one home of ``counts``, ``job_row``, ``archive_row``, ``scalar`` and
``expire_lease`` (``tests/worker_harness.py`` holds only the worker-process and
App harness and imports these).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pgbatch import Client
from tests.conftest import PgTestServer, TestDatabase, _drop_database, open_connections

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

#: Tables whose content is the whole state of the queue.
STATE_TABLES = ("job", "job_archive", "kv", "queue", "node", "leader")


@contextlib.contextmanager
def raises_sqlstate(code: str, match: str | None = None) -> Iterator[None]:
    """Expect a database error with SQLSTATE ``code`` (and a message matching ``match``)."""
    with pytest.raises(psycopg.Error) as info:
        yield
    err = info.value
    assert err.sqlstate == code, f"expected SQLSTATE {code}, got {err.sqlstate}: {err}"
    if match is not None:
        primary = err.diag.message_primary or ""
        assert match.lower() in primary.lower(), f"{match!r} not in message {primary!r}"


def state_snapshot(conn: Conn) -> dict[str, Any]:
    """Everything the SQL API can change: every row of every table, archived counts."""
    snap: dict[str, Any] = {}
    for table in STATE_TABLES:
        query = sql.SQL("select coalesce(jsonb_agg(to_jsonb(t) order by to_jsonb(t)::text),"
                        " '[]') from pgbatch.{} t").format(sql.Identifier(table))
        row = conn.execute(query).fetchone()
        assert row is not None
        snap[table] = row[0]
    # every counter of queue_stats (the age of the oldest job moves with the clock)
    snap["stats"] = [{k: v for k, v in row.items() if k != "oldest_pending_age"}
                     for row in all_stats(conn)]
    return snap


def stats(conn: Conn, queue: str) -> Row:
    """queue_stats(queue) as a dict (zeros when the queue has no row)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from pgbatch.queue_stats(%s)", [queue]).fetchone()
    if row is None:
        return {"queue": queue, "pending": 0, "scheduled": 0, "claimed": 0, "done": 0,
                "dead": 0, "cancelled": 0, "oldest_pending_age": None, "paused": False}
    return row


def all_stats(conn: Conn) -> list[Row]:
    """queue_stats() of every queue."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from pgbatch.queue_stats()").fetchall()


def counts(conn: Conn, queue: str) -> dict[str, int]:
    """The counters of queue_stats(queue), without the age and the paused flag."""
    s = stats(conn, queue)
    return {k: int(s[k]) for k in ("pending", "scheduled", "claimed", "done", "dead",
                                   "cancelled")}


def enqueue(conn: Conn, queue: str, payload: Any = None, **kw: Any) -> UUID:
    """pgbatch.enqueue with named arguments; returns the id."""
    args = [sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder()) for k in kw]
    query = sql.SQL("select pgbatch.enqueue(%s, %s::jsonb{})").format(
        sql.SQL("").join(sql.SQL(", ") + a for a in args))
    row = conn.execute(query, [queue, Jsonb(payload or {}), *kw.values()]
                       ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def claim(conn: Conn, queue: str, max_jobs: int = 1, lease: str | timedelta = "30 seconds",
          worker_id: str | None = None) -> list[Row]:
    """pgbatch.claim as a list of dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from pgbatch.claim(%s, %s, %s::interval, %s)",
                           [queue, max_jobs, lease, worker_id]).fetchall()


def claim_one(conn: Conn, queue: str, lease: str | timedelta = "30 seconds") -> Row:
    """Claim exactly one job (fails the test when none is claimable)."""
    rows = claim(conn, queue, 1, lease)
    assert len(rows) == 1, f"expected one claimable job in {queue!r}, got {rows}"
    return rows[0]


def job_row(conn: Conn, job_id: UUID) -> Row | None:
    """The live row of a job, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from pgbatch.job where id = %s", [job_id]).fetchone()


def archive_row(conn: Conn, job_id: UUID) -> Row | None:
    """The archived record of a job, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from pgbatch.job_archive where id = %s", [job_id]).fetchone()


def expire_lease(conn: Conn, job_id: UUID | None = None) -> int:
    """Backdate leases (one job's, or every claim's) as a superuser: they expired long ago."""
    cur = conn.execute(
        "update pgbatch.job set lease_expires_at = timestamptz '2000-01-01 00:00Z'"
        " where state = 'claimed' and (%s::uuid is null or id = %s::uuid)", [job_id, job_id])
    return cur.rowcount


def set_clock(conn: Conn, at: datetime | None) -> None:
    """Move pgbatch.now() of this session to ``at`` (None: back to the real clock)."""
    conn.execute("select set_config('pgbatch.fake_now', %s, false)",
                 ["" if at is None else at.isoformat()])


def db_now(conn: Conn) -> datetime:
    """pgbatch.now() of this session."""
    row = conn.execute("select pgbatch.now()").fetchone()
    assert row is not None
    now: datetime = row[0]
    return now


#: Parameters of a query: positional or by name.
Params = Sequence[Any] | Mapping[str, Any]


def scalar(conn: Conn, query: str, params: Params | None = None) -> Any:
    """The first column of the first row (fails the test when there is no row)."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@contextlib.contextmanager
def open_client(dsn: str, max_size: int = 4) -> Iterator[Client]:
    """A sync Client on its own small pool, closed on exit."""
    client = Client.connect(dsn, min_size=1, max_size=max_size)
    try:
        yield client
    finally:
        client.close()


def run_threads(targets: list[Callable[[], None]], timeout: float = 60.0) -> None:
    """Run each callable in its own thread, join them, and re-raise the first failure."""
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def inner() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                errors.append(exc)
        return inner

    threads = [threading.Thread(target=wrap(t), name=f"pgb-test-{i}")
               for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads did not finish within {timeout}s: {alive}"
    if errors:
        raise errors[0]


def collect_notifies(listener: Conn, sender: Conn, channel: str,
                     timeout: float = 10.0) -> list[str]:
    """Payloads the listener got on ``channel`` before a marker sent now by ``sender``.

    Notifications of committed transactions arrive in commit order, so once the
    marker arrives, everything committed before it has arrived too: no sleeping.
    """
    sender.execute("select pg_notify(%s, 'marker')", [channel])
    got: list[str] = []
    for n in listener.notifies(timeout=timeout):
        if n.channel == channel and n.payload == "marker":
            return got
        if n.channel == channel:
            got.append(n.payload)
    pytest.fail(f"marker notification on {channel} not received within {timeout}s; got {got}")


def listen(conn: Conn, channel: str) -> None:
    """LISTEN on ``channel`` (quoted as an identifier)."""
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


@contextlib.contextmanager
def cloned_database(pg_server: PgTestServer, template_db: str, label: str
                    ) -> Iterator[TestDatabase]:
    """A database cloned from the template for a whole module (the ``db`` fixture is per test).

    For tests that share one database because none of them may change it.
    """
    name = f"pgbatch_m_{label}_{secrets.token_hex(4)}"
    admin = pg_server.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    database = TestDatabase(name=name, dsn=pg_server.admin_dsn(name))
    leaked: list[str] = []
    try:
        yield database
    finally:
        try:
            database.close_all()
            leaked = open_connections(admin, name)
        finally:
            _drop_database(admin, name)
    if leaked:
        pytest.fail(f"tests left connections open to {name}: {leaked}", pytrace=False)
