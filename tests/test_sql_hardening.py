"""Hostile input and its defects: each test is named after one and fails without its fix.

An id must be unique across live and archived jobs at every entry point, the
job being acked included; a job whose id is both live and archived (left by an
older pgbatch that let a follow-up reuse it) never fails its neighbours,
reaping or cancelling. Leases, times, sizes and NULLs are bounded or refused
with their own PB code, and a refusal changes nothing (docs/limits.md).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from pgbatch import InvalidText, ValidationError
from tests.conftest import PgTestServer, TestDatabase
from tests.helpers import (
    archive_row,
    claim,
    claim_one,
    cloned_database,
    counts,
    enqueue,
    expire_lease,
    job_row,
    open_client,
    raises_sqlstate,
    scalar,
    state_snapshot,
)

Conn = psycopg.Connection[Any]


def _effects_reusing(job_id: UUID) -> str:
    return json.dumps({"enqueue": [{"queue": "q", "id": str(job_id)}]})


def _poison(conn: Conn, job_id: UUID) -> None:
    """Leave what the old id-reuse defect left: an archived 'done' record sharing
    the id of a live job (as a superuser, with plain table writes)."""
    conn.execute(
        "insert into pgbatch.job_archive (id, queue, payload, priority, run_at, state, attempt,"
        " max_attempts, dedup_key, created_at, finished_at, claim_token, claimed_by, last_error,"
        " result)"
        " select id, queue, payload, priority, run_at, 'done', 1, max_attempts, dedup_key,"
        " created_at, now(), gen_random_uuid(), null, null, '{\"op\": \"ack\", \"ids\": []}'"
        " from pgbatch.job where id = %s", [job_id])
    conn.execute("insert into pgbatch.queue_count (queue, done)"
                 " select queue, 1 from pgbatch.job where id = %s", [job_id])


def _claimed(conn: Conn, queue: str = "q", n: int = 1, **kw: Any) -> list[dict[str, Any]]:
    for _ in range(n):
        enqueue(conn, queue, **kw)
    jobs = claim(conn, queue, n)
    assert len(jobs) == n
    return jobs


# --------------------------------------------------------------------------- 1. id reuse


@pytest.mark.in_tx
def test_followup_reusing_the_acked_jobs_id_is_refused_via_ack(conn: Conn) -> None:
    (job,) = _claimed(conn)
    before = state_snapshot(conn)
    with raises_sqlstate("PB002", "duplicate job id"):
        conn.execute("select pgbatch.ack(%s, %s, %s)",
                     [job["id"], job["claim_token"], _effects_reusing(job["id"])])
    assert state_snapshot(conn) == before
    # the claim still holds: the same ack without the bad follow-up goes through
    conn.execute("select pgbatch.ack(%s, %s)", [job["id"], job["claim_token"]])
    assert counts(conn, "q")["done"] == 1


@pytest.mark.in_tx
def test_followup_reusing_the_acked_jobs_id_is_refused_via_ack_many(conn: Conn) -> None:
    bad, good = _claimed(conn, n=2)
    entries = [{"job_id": str(bad["id"]), "claim_token": str(bad["claim_token"]),
                "effects": json.loads(_effects_reusing(bad["id"]))},
               {"job_id": str(good["id"]), "claim_token": str(good["claim_token"])}]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("select * from pgbatch.ack_many(%s)", [json.dumps(entries)]).fetchall()
    assert [(r["status"], r["error_code"]) for r in rows] == [("error", "PB002"), ("acked", None)]
    bad_row = job_row(conn, bad["id"])
    assert bad_row is not None
    assert bad_row["state"] == "claimed"
    assert archive_row(conn, bad["id"]) is None
    assert scalar(conn, "select count(*) from pgbatch.job where id = %s", [bad["id"]]) == 1


@pytest.mark.in_tx
def test_followup_reusing_the_acked_jobs_id_is_refused_via_ack_ids(conn: Conn) -> None:
    """ack_ids takes no effects; what it must survive is the pair such a
    follow-up left behind in an older version: that entry and its neighbours
    are all acked."""
    jobs = _claimed(conn, n=3)
    _poison(conn, jobs[1]["id"])
    missed = conn.execute("select * from pgbatch.ack_ids(%s, %s)",
                          [[j["id"] for j in jobs], [j["claim_token"] for j in jobs]]).fetchall()
    assert missed == []
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert scalar(conn, "select count(*) from pgbatch.job_archive where state = 'done'") == 3
    archived = archive_row(conn, jobs[1]["id"])
    assert archived is not None
    assert archived["claim_token"] == jobs[1]["claim_token"]
    assert counts(conn, "q")["done"] == 3


@pytest.mark.in_tx
def test_followup_reusing_the_id_of_a_job_acked_earlier_in_the_same_ack_many_is_refused(
    conn: Conn,
) -> None:
    """(A guard, not a defect: the archived id was always refused.)"""
    first, second = _claimed(conn, n=2)
    entries = [{"job_id": str(first["id"]), "claim_token": str(first["claim_token"])},
               {"job_id": str(second["id"]), "claim_token": str(second["claim_token"]),
                "effects": json.loads(_effects_reusing(first["id"]))}]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("select * from pgbatch.ack_many(%s)", [json.dumps(entries)]).fetchall()
    assert [(r["status"], r["error_code"]) for r in rows] == [("acked", None), ("error", "PB002")]
    assert scalar(conn, "select count(*) from pgbatch.job where id = %s", [first["id"]]) == 0


@pytest.mark.in_tx
def test_poisoned_entry_does_not_fail_neighbours_in_ack_ids(conn: Conn) -> None:
    jobs = _claimed(conn, n=5)
    _poison(conn, jobs[0]["id"])
    _poison(conn, jobs[4]["id"])
    stale = uuid4()
    ids = [j["id"] for j in jobs]
    tokens = [j["claim_token"] for j in jobs]
    tokens[2] = stale
    with conn.cursor(row_factory=dict_row) as cur:
        missed = cur.execute("select * from pgbatch.ack_ids(%s, %s)", [ids, tokens]).fetchall()
    assert [(m["job_id"], m["status"]) for m in missed] == [(jobs[2]["id"], "claim_lost")]
    assert scalar(conn, "select count(*) from pgbatch.job") == 1
    assert counts(conn, "q") == {"pending": 0, "scheduled": 0, "claimed": 1, "done": 4,
                                 "dead": 0, "cancelled": 0}


@pytest.mark.in_tx
def test_poisoned_entry_does_not_fail_neighbours_in_ack_many(conn: Conn) -> None:
    jobs = _claimed(conn, n=3)
    _poison(conn, jobs[1]["id"])
    entries: list[dict[str, Any]] = [{"job_id": str(j["id"]), "claim_token": str(j["claim_token"])}
                                     for j in jobs]
    entries[2] = {**entries[2], "effects": {"kv_put": {"k": 1}}}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("select * from pgbatch.ack_many(%s)", [json.dumps(entries)]).fetchall()
    assert [r["status"] for r in rows] == ["acked"] * 3
    assert scalar(conn, "select count(*) from pgbatch.job") == 0
    assert counts(conn, "q")["done"] == 3
    assert scalar(conn, "select pgbatch.kv_get('k')") == 1


@pytest.mark.in_tx
def test_reap_expired_is_not_wedged_by_a_job_whose_id_is_archived(conn: Conn) -> None:
    last, _other = _claimed(conn, n=2, max_attempts=1)
    _poison(conn, last["id"])
    expire_lease(conn)
    assert scalar(conn, "select pgbatch.reap_expired()") == 2
    assert scalar(conn, "select pgbatch.reap_expired()") == 0
    dead = archive_row(conn, last["id"])
    assert dead is not None
    assert dead["state"] == "dead"
    assert dead["last_error"]["type"] == "LeaseExpired"
    assert counts(conn, "q") == {"pending": 0, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 2, "cancelled": 0}
    # and reaping of other queues goes on
    (later,) = _claimed(conn, "r")
    expire_lease(conn, later["id"])
    assert scalar(conn, "select pgbatch.reap_expired()") == 1


@pytest.mark.in_tx
def test_cancel_job_of_a_job_whose_id_is_archived_cancels_it(conn: Conn) -> None:
    pending = enqueue(conn, "q")
    _poison(conn, pending)
    assert scalar(conn, "select pgbatch.cancel_job(%s)", [pending]) == "cancelled"
    assert job_row(conn, pending) is None
    record = archive_row(conn, pending)
    assert record is not None
    assert record["state"] == "cancelled"
    assert counts(conn, "q") == {"pending": 0, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 0, "cancelled": 1}
    assert scalar(conn, "select pgbatch.cancel_job(%s)", [pending]) == "cancelled"


@pytest.mark.in_tx
def test_requeue_dead_job_whose_id_is_live_is_refused(conn: Conn) -> None:
    (job,) = _claimed(conn)
    conn.execute("select pgbatch.dead_letter(%s, %s)", [job["id"], job["claim_token"]])
    # an older version's pair: a live job with the dead job's id
    conn.execute("insert into pgbatch.job (id, queue, payload, run_at, max_attempts, created_at)"
                 " values (%s, 'q', '{}', now(), 3, now())", [job["id"]])
    before = state_snapshot(conn)
    with raises_sqlstate("PB002", "a live job has this id"):
        conn.execute("select pgbatch.requeue_dead_job(%s)", [job["id"]])
    assert state_snapshot(conn) == before


# --------------------------------------------------------------------------- refusals


@dataclass
class World:
    """A shared database with a pending, a claimed, a dead and a done job."""

    conn: Conn
    pending: UUID
    claimed: UUID
    token: UUID
    dead: UUID


@pytest.fixture(scope="module")
def shared_db(pg_server: PgTestServer, template_db: str) -> Iterator[TestDatabase]:
    """One database for the refusal cases: each must leave it unchanged."""
    with cloned_database(pg_server, template_db, "hardening") as database:
        yield database


@pytest.fixture(scope="module")
def world(shared_db: TestDatabase) -> World:
    conn = shared_db.connect()
    done = enqueue(conn, "q", priority=3)
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.ack(%s, %s)", [done, job["claim_token"]])
    dead = enqueue(conn, "q", priority=2)
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.dead_letter(%s, %s)", [dead, job["claim_token"]])
    claimed = enqueue(conn, "q", priority=1)
    token = claim_one(conn, "q", lease="1 hour")["claim_token"]
    pending = enqueue(conn, "q")
    conn.execute("select pgbatch.register_node('n1', gen_random_uuid())")
    return World(conn, pending, claimed, token, dead)


def _refused(world: World, sqlstate: str, fragment: str, query: str, *params: Any) -> None:
    before = state_snapshot(world.conn)
    with raises_sqlstate(sqlstate, fragment):
        world.conn.execute(query, list(params) or None)
    assert state_snapshot(world.conn) == before


FAR_INTERVALS = ["infinity", "100000 years"]


# 2. leases without end

@pytest.mark.parametrize("lease", FAR_INTERVALS)
def test_infinite_lease_is_refused(world: World, lease: str) -> None:
    if lease == "infinity" and world.conn.info.server_version < 170000:
        lease = "178000000 years"  # PG 15/16 have no infinite interval: the largest one
    _refused(world, "PB007", "invalid lease",
             "select * from pgbatch.claim('q', 1, %s::interval)", lease)
    _refused(world, "PB007", "invalid lease",
             "select pgbatch.renew_lease(%s, %s, %s::interval)", world.claimed, world.token, lease)


@pytest.mark.parametrize("lease", ["1 microsecond", "999 milliseconds", "1 day 1 second"])
def test_lease_outside_the_documented_bounds_is_refused(world: World, lease: str) -> None:
    _refused(world, "PB007", "must be 00:00:01 to 1 day",
             "select * from pgbatch.claim('q', 1, %s::interval)", lease)
    _refused(world, "PB007", "must be 00:00:01 to 1 day",
             "select pgbatch.renew_lease(%s, %s, %s::interval)", world.claimed, world.token, lease)


# 3. standard errors instead of PB codes

@pytest.mark.parametrize("at", ["infinity", "-infinity", "100000-01-01", "2000-01-01 BC"])
def test_run_at_at_infinity_is_refused_with_invalid_time(world: World, at: str) -> None:
    _refused(world, "PB013", "invalid run_at",
             "select pgbatch.enqueue('q', '{}', %s::timestamptz)", at)
    _refused(world, "PB013", "invalid enqueue request 1: invalid run_at",
             "select pgbatch.enqueue_many(%s)",
             json.dumps([{"queue": "q"}, {"queue": "q", "run_at": at}]))
    _refused(world, "PB013", "invalid retry_at",
             "select pgbatch.nack(%s, %s, retry_at => %s::timestamptz)",
             world.claimed, world.token, at)
    _refused(world, "PB013", "invalid run_at",
             "select pgbatch.requeue_dead_job(%s, %s::timestamptz)", world.dead, at)
    _refused(world, "PB008", "invalid run_at",
             "select pgbatch.ack(%s, %s, %s)", world.claimed, world.token,
             json.dumps({"enqueue": [{"queue": "q", "run_at": at}]}))


def test_dedup_key_over_8_kb_is_refused(world: World) -> None:
    key = "".join(str(uuid4()) for _ in range(250))  # 9,000 characters, incompressible
    _refused(world, "PB012", "dedup_key too long",
             "select pgbatch.enqueue('q', dedup_key => %s)", key)
    _refused(world, "PB012", "dedup_key too long",
             "select pgbatch.enqueue_many(%s)", json.dumps([{"queue": "q", "dedup_key": key}]))
    _refused(world, "PB008", "dedup_key too long",
             "select pgbatch.ack(%s, %s, %s)", world.claimed, world.token,
             json.dumps({"enqueue": [{"queue": "q", "dedup_key": key}]}))


def test_kv_put_key_over_8_kb_is_refused(world: World) -> None:
    key = "".join(str(uuid4()) for _ in range(250))
    _refused(world, "PB008", "kv_put key of 9000 characters",
             "select pgbatch.ack(%s, %s, %s)", world.claimed, world.token,
             json.dumps({"kv_put": {key: 1}}))


def test_ack_ids_with_two_dimensional_arrays_is_refused(world: World) -> None:
    ids = f"{{{{{world.claimed},{world.pending}}},{{{world.dead},{world.claimed}}}}}"
    tokens = f"{{{{{world.token},{uuid4()}}},{{{uuid4()},{uuid4()}}}}}"
    _refused(world, "PB007", "one-dimensional",
             "select * from pgbatch.ack_ids(%s::uuid[], %s::uuid[])", ids, tokens)
    _refused(world, "PB007", "one-dimensional",
             "select * from pgbatch.ack_ids(%s::uuid[], %s::uuid[])",
             f"[2:2]={{{world.claimed}}}", f"[2:2]={{{world.token}}}")


def test_register_node_with_null_boot_id_is_refused(world: World) -> None:
    _refused(world, "PB007", "boot_id", "select pgbatch.register_node('n', null)")
    _refused(world, "PB007", "node_id", "select pgbatch.register_node(null, gen_random_uuid())")
    _refused(world, "PB007", "node_id", "select pgbatch.register_node('   ', gen_random_uuid())")


def test_sweep_retention_of_100000_years_is_refused(world: World) -> None:
    _refused(world, "PB007", "invalid retention",
             "select pgbatch.sweep_retention('100000 years')")
    _refused(world, "PB007", "invalid retention",
             "select pgbatch.sweep_retention(dead_after => '100000 years')")


# 4. accepted though they should not be

@pytest.mark.parametrize(("base", "cap"), [("-1 second", "1 hour"), ("1 second", "-1 hour"),
                                           ("100000 years", "1 hour"), (None, "1 hour")])
def test_negative_backoff_is_refused(world: World, base: str | None, cap: str) -> None:
    _refused(world, "PB007", "invalid backoff",
             "select pgbatch.nack(%s, %s, backoff_base => %s::interval,"
             " backoff_cap => %s::interval)", world.claimed, world.token, base, cap)
    _refused(world, "PB007", "invalid backoff",
             "select pgbatch.backoff(3, %s::interval, %s::interval)", base, cap)


def test_check_compat_null_is_refused(world: World) -> None:
    _refused(world, "PB007", "supported", "select pgbatch.check_compat(null)")


@pytest.mark.parametrize("name", [" ", "   ", "\t\n", "\u3000", " \u00a0\u2003 "])
def test_whitespace_only_queue_names_are_refused(world: World, name: str) -> None:
    _refused(world, "PB005", "only whitespace", "select pgbatch.enqueue(%s)", name)
    _refused(world, "PB005", "only whitespace", "select pgbatch.enqueue_many(%s)",
             json.dumps([{"queue": name}]))
    _refused(world, "PB005", "only whitespace", "select * from pgbatch.claim(%s)", name)
    _refused(world, "PB005", "only whitespace", "select pgbatch.pause_queue(%s)", name)
    _refused(world, "PB005", "only whitespace", "select pgbatch.resume_queue(%s)", name)
    _refused(world, "PB005", "only whitespace", "select pgbatch.set_queue_notify(%s, false)",
             name)


def test_every_python_whitespace_character_alone_is_not_a_queue_name(world: World) -> None:
    blank = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    assert len(blank) > 20
    for name in blank:
        _refused(world, "PB005", "only whitespace", "select pgbatch.enqueue(%s)", name * 2)
    assert enqueue(world.conn, "x\u3000y") is not None
    world.conn.execute("delete from pgbatch.job where queue = 'x\u3000y'")
    world.conn.execute("delete from pgbatch.queue where name = 'x\u3000y'")


def test_unbounded_last_error_reason_and_kv_value_are_refused(world: World) -> None:
    big = "x" * 100_000
    _refused(world, "PB012", "error too large",
             "select pgbatch.nack(%s, %s, %s::jsonb)", world.claimed, world.token,
             json.dumps({"message": big}))
    _refused(world, "PB012", "reason too large",
             "select pgbatch.dead_letter(%s, %s, %s)", world.claimed, world.token, big)
    huge = "".join(str(uuid4()) for _ in range(40_000))  # 1.4 MB, incompressible
    _refused(world, "PB008", "kv_put value of key k",
             "select pgbatch.ack(%s, %s, %s)", world.claimed, world.token,
             json.dumps({"kv_put": {"k": huge}}))
    _refused(world, "PB012", "node info too large",
             "select pgbatch.register_node('n2', gen_random_uuid(), %s::jsonb)",
             json.dumps({"x": big}))
    _refused(world, "PB007", "worker_id",
             "select * from pgbatch.claim('q', 1, '30 seconds', %s)", "w" * 201)


@pytest.mark.in_tx
def test_the_limits_themselves_are_accepted(conn: Conn) -> None:
    limits = scalar(conn, "select pgbatch.limits()")
    (job,) = _claimed(conn, dedup_key="k" * limits["max_dedup_key_length"])
    conn.execute("select pgbatch.renew_lease(%s, %s, '1 day')", [job["id"], job["claim_token"]])
    conn.execute("select pgbatch.renew_lease(%s, %s, '1 second')", [job["id"], job["claim_token"]])
    conn.execute("select pgbatch.ack(%s, %s, %s)", [job["id"], job["claim_token"], json.dumps(
        {"kv_put": {"k" * limits["max_kv_key_length"]: "v"}})])
    (job,) = _claimed(conn)
    reason = "r" * limits["max_error_bytes"]
    conn.execute("select pgbatch.dead_letter(%s, %s, %s)", [job["id"], job["claim_token"], reason])
    conn.execute("select pgbatch.requeue_dead_job(%s, pgbatch.now() + interval '9 years')",
                 [job["id"]])
    conn.execute("select pgbatch.enqueue('q', run_at => pgbatch.now() - interval '9 years')")
    assert scalar(conn, "select pgbatch.sweep_retention('100 years', '100 years')") == 0
    assert scalar(conn, "select pgbatch.register_node(%s, gen_random_uuid())", ["n" * 200]) == 0


def test_an_id_committed_by_another_transaction_during_enqueue_is_duplicate_job_id(
    db: TestDatabase,
) -> None:
    """The id probe cannot see an uncommitted insert; the insert then waits for it and,
    once it commits, fails: that too is DuplicateJobId, not a standard error."""
    job_id = uuid4()
    holder = db.connect(autocommit=False)
    holder.execute("select pgbatch.enqueue('q', id_override => %s)", [job_id])
    racer = db.connect()
    racer_pid = racer.info.backend_pid
    watcher = db.connect()
    errors: list[psycopg.Error] = []

    def race() -> None:
        try:
            racer.execute("select pgbatch.enqueue('q', id_override => %s)", [job_id])
        except psycopg.Error as exc:
            errors.append(exc)

    thread = threading.Thread(target=race, name="pgb-racer")
    thread.start()
    deadline = time.monotonic() + 30
    while scalar(watcher, "select wait_event_type from pg_stat_activity where pid = %s",
                 [racer_pid]) != "Lock":
        assert time.monotonic() < deadline, "the racing enqueue never waited for the holder"
    holder.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert [e.sqlstate for e in errors] == ["PB002"]
    assert scalar(watcher, "select count(*) from pgbatch.job") == 1


def test_nul_in_text_or_json_is_invalid_text_and_changes_nothing(db: TestDatabase) -> None:
    """NUL cannot be stored in text or jsonb: the client's own category, InvalidText."""
    conn = db.connect()
    before = state_snapshot(conn)
    with open_client(db.dsn) as client:
        with pytest.raises(InvalidText, match="NUL"):
            client.enqueue("q\x00")  # refused by psycopg before sending
        with pytest.raises(InvalidText, match="Unicode escape"):
            client.enqueue("q", {"text": "a\x00b"})  # refused by the jsonb input (22P05)
        with pytest.raises(InvalidText):
            client.enqueue("q", dedup_key="k\x00")
    assert state_snapshot(conn) == before
    assert issubclass(InvalidText, ValidationError)
