"""Settling claims: ClaimLost fencing, idempotent retries, ack_many, nack and backoff."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from pgbatch import AckEffects, AckRequest, ClaimLost, Client, EnqueueRequest
from tests.conftest import TestDatabase
from tests.helpers import (
    archive_row,
    claim,
    claim_one,
    counts,
    db_now,
    enqueue,
    expire_lease,
    job_row,
    open_client,
    raises_sqlstate,
    scalar,
    set_clock,
    state_snapshot,
)

Conn = psycopg.Connection[Any]

SETTLE_SQL: dict[str, str] = {
    "ack": "select pgbatch.ack(%s, %s)",
    "nack": "select pgbatch.nack(%s, %s)",
    "dead_letter": "select pgbatch.dead_letter(%s, %s)",
    "renew_lease": "select pgbatch.renew_lease(%s, %s)",
}

SETTLE_CLIENT: dict[str, Callable[[Client, UUID, UUID], Any]] = {
    "ack": lambda c, j, t: c.ack(j, t),
    "nack": lambda c, j, t: c.nack(j, t),
    "dead_letter": lambda c, j, t: c.dead_letter(j, t),
    "renew_lease": lambda c, j, t: c.renew_lease(j, t),
}


def assert_claim_lost_everywhere(db: TestDatabase, conn: Conn, op: str, job_id: UUID,
                                 token: UUID) -> None:
    """The call fails with ClaimLost in SQL (PB001) and in Python, and changes nothing."""
    before = state_snapshot(conn)
    with raises_sqlstate("PB001", "claim lost"):
        conn.execute(SETTLE_SQL[op], [job_id, token])
    assert state_snapshot(conn) == before
    with open_client(db.dsn) as client, pytest.raises(ClaimLost) as info:
        SETTLE_CLIENT[op](client, job_id, token)
    assert info.value.sqlstate == "PB001"
    assert state_snapshot(conn) == before


@pytest.mark.parametrize("op", list(SETTLE_SQL))
def test_settling_after_lease_expired_and_reaped_raises_claim_lost(
    db: TestDatabase, conn: Conn, op: str
) -> None:
    job_id = enqueue(conn, "q", max_attempts=5)
    job = claim_one(conn, "q")
    assert expire_lease(conn, job_id) == 1
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    stats_before = counts(conn, "q")
    assert stats_before["pending"] == 1
    assert_claim_lost_everywhere(db, conn, op, job_id, job["claim_token"])
    assert counts(conn, "q") == stats_before
    row = job_row(conn, job_id)
    assert row is not None
    assert (row["state"], row["attempt"]) == ("pending", 1)


@pytest.mark.parametrize("op", list(SETTLE_SQL))
def test_settling_after_reaping_by_the_clock_raises_claim_lost(
    db: TestDatabase, conn: Conn, op: str
) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q", lease="10 seconds")
    reaper = db.connect()
    set_clock(reaper, db_now(reaper) + timedelta(seconds=11))
    assert scalar(reaper, "select pgbatch.reap_expired()") == 1
    assert_claim_lost_everywhere(db, conn, op, job_id, job["claim_token"])


@pytest.mark.parametrize("then", ["reclaimed", "acked_by_new_claim", "dead_by_new_claim"])
@pytest.mark.parametrize("op", list(SETTLE_SQL))
def test_stale_token_after_another_claim_raises_claim_lost(
    db: TestDatabase, conn: Conn, op: str, then: str
) -> None:
    job_id = enqueue(conn, "q", max_attempts=5)
    stale = claim_one(conn, "q")
    expire_lease(conn, job_id)
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    other = db.connect()
    fresh = claim_one(other, "q")
    assert fresh["id"] == job_id
    assert fresh["claim_token"] != stale["claim_token"]
    if then == "acked_by_new_claim":
        other.execute("select pgbatch.ack(%s, %s)", [job_id, fresh["claim_token"]])
    elif then == "dead_by_new_claim":
        other.execute("select pgbatch.dead_letter(%s, %s)", [job_id, fresh["claim_token"]])
    stats_before = counts(conn, "q")
    assert_claim_lost_everywhere(db, conn, op, job_id, stale["claim_token"])
    assert counts(conn, "q") == stats_before
    if then == "reclaimed":
        # the new holder is untouched and can still settle
        row = job_row(conn, job_id)
        assert row is not None
        assert row["claim_token"] == fresh["claim_token"]
        other.execute("select pgbatch.ack(%s, %s)", [job_id, fresh["claim_token"]])


def test_token_of_a_nacked_claim_cannot_ack_the_next_claim(db: TestDatabase, conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    first = claim_one(conn, "q")
    conn.execute("select pgbatch.nack(%s, %s, retry_at => pgbatch.now())",
                 [job_id, first["claim_token"]])
    claim_one(conn, "q")
    for op in ("ack", "dead_letter", "renew_lease"):
        assert_claim_lost_everywhere(db, conn, op, job_id, first["claim_token"])


def test_random_token_on_a_pending_job_raises_claim_lost(db: TestDatabase, conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    for op in SETTLE_SQL:
        assert_claim_lost_everywhere(db, conn, op, job_id, uuid4())


@pytest.mark.in_tx
def test_renew_lease_after_expiry_works_until_the_job_is_reaped(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    expire_lease(conn, job_id)
    t = db_now(conn)
    set_clock(conn, t)
    renewed = scalar(conn, "select pgbatch.renew_lease(%s, %s, '1 minute')",
                     [job_id, job["claim_token"]])
    assert renewed == t + timedelta(minutes=1)
    assert scalar(conn, "select pgbatch.reap_expired()") == 0
    conn.execute("select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]])


# ---------------------------------------------------------------- idempotent retries


def test_ack_retry_with_the_same_token_returns_the_same_follow_ups(
    db: TestDatabase, conn: Conn
) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    effects = json.dumps({"enqueue": [{"queue": "next", "payload": {"i": 1}},
                                      {"queue": "next", "payload": {"i": 2}}],
                          "kv_put": {"seen": 1}})
    first = scalar(conn, "select pgbatch.ack(%s, %s, %s)", [job_id, job["claim_token"], effects])
    assert len(first) == 2
    before = state_snapshot(conn)
    again = scalar(conn, "select pgbatch.ack(%s, %s, %s)", [job_id, job["claim_token"], effects])
    assert again == first
    # a retry without the effects (the client lost them) gets the same answer
    assert scalar(conn, "select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]]) == first
    assert state_snapshot(conn) == before
    with open_client(db.dsn) as client:
        assert client.ack(job_id, job["claim_token"]) == first
    assert state_snapshot(conn) == before
    assert counts(conn, "next")["pending"] == 2


@pytest.mark.in_tx
def test_ack_retry_without_follow_ups_returns_empty_list(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    assert scalar(conn, "select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]]) == []
    assert scalar(conn, "select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]]) == []


@pytest.mark.parametrize("max_attempts", [1, 5])
def test_nack_retry_with_the_same_token_returns_the_first_state(
    db: TestDatabase, conn: Conn, max_attempts: int
) -> None:
    job_id = enqueue(conn, "q", max_attempts=max_attempts)
    job = claim_one(conn, "q")
    expected = "dead" if max_attempts == 1 else "pending"
    query = "select pgbatch.nack(%s, %s, '{\"message\": \"boom\"}')"
    assert scalar(conn, query, [job_id, job["claim_token"]]) == expected
    before = state_snapshot(conn)
    assert scalar(conn, query, [job_id, job["claim_token"]]) == expected
    with open_client(db.dsn) as client:
        assert client.nack(job_id, job["claim_token"]) == expected
    assert state_snapshot(conn) == before


def test_dead_letter_retry_with_the_same_token_succeeds_quietly(
    db: TestDatabase, conn: Conn
) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    conn.execute("select pgbatch.dead_letter(%s, %s, 'poison')", [job_id, job["claim_token"]])
    before = state_snapshot(conn)
    conn.execute("select pgbatch.dead_letter(%s, %s, 'poison')", [job_id, job["claim_token"]])
    with open_client(db.dsn) as client:
        client.dead_letter(job_id, job["claim_token"], "poison")
    assert state_snapshot(conn) == before
    # ... but the token that dead-lettered it cannot ack it
    with raises_sqlstate("PB001"):
        conn.execute("select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]])


# ---------------------------------------------------------------- ack_many


def test_ack_many_settles_99_and_reports_the_lost_claim(db: TestDatabase, conn: Conn) -> None:
    ids = scalar(conn, "select pgbatch.enqueue_many(%s)",
                 [json.dumps([{"queue": "q", "payload": {"i": i}} for i in range(100)])])
    jobs = claim(conn, "q", 100)
    assert len(jobs) == 100
    lost = jobs[37]
    expire_lease(conn, lost["id"])
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    entries = json.dumps([{"job_id": str(j["id"]), "claim_token": str(j["claim_token"])}
                          for j in jobs])
    outcomes = conn.execute(
        "select job_id, status, error_code, message, follow_ups from pgbatch.ack_many(%s)",
        [entries]).fetchall()
    assert [o[0] for o in outcomes] == [j["id"] for j in jobs]
    assert [o[1] for o in outcomes].count("acked") == 99
    assert outcomes[37][1:3] == ("claim_lost", "PB001")
    assert "claim lost" in outcomes[37][3]
    assert counts(conn, "q") == {"pending": 1, "scheduled": 0, "claimed": 0, "done": 99,
                                 "dead": 0, "cancelled": 0}
    assert set(ids) == {j["id"] for j in jobs}


def test_ack_many_with_effects_lost_claim_and_malformed_entry(
    db: TestDatabase, conn: Conn
) -> None:
    conn.execute("select pgbatch.enqueue_many(%s)",
                 [json.dumps([{"queue": "q", "payload": {"i": i}} for i in range(100)])])
    jobs = claim(conn, "q", 100)
    lost, bad, unknown = jobs[10], jobs[20], uuid4()
    expire_lease(conn, lost["id"])
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    entries: list[dict[str, Any]] = []
    for i, j in enumerate(jobs):
        entry: dict[str, Any] = {"job_id": str(j["id"]), "claim_token": str(j["claim_token"])}
        if i % 3 == 0:
            entry["effects"] = {"enqueue": [{"queue": "next", "payload": {"from": i}}],
                                "kv_put": {f"k{i}": i}}
        entries.append(entry)
    entries[10]["effects"] = {"enqueue": [{"queue": "next", "payload": "from lost"}],
                              "kv_put": {"lost": True}}
    entries[20]["effects"] = {"enqueue": [{"queue": "next", "colour": "red"}],
                              "kv_put": {"bad": True}}
    entries.append({"job_id": str(unknown), "claim_token": str(uuid4())})
    outcomes = conn.execute(
        "select job_id, status, error_code, follow_ups from pgbatch.ack_many(%s)",
        [json.dumps(entries)]).fetchall()
    assert len(outcomes) == 101
    by_status: dict[str, list[int]] = {}
    for i, o in enumerate(outcomes):
        by_status.setdefault(o[1], []).append(i)
    assert by_status["claim_lost"] == [10]
    assert by_status["error"] == [20]
    assert by_status["not_found"] == [100]
    assert len(by_status["acked"]) == 98
    assert outcomes[20][2] == "PB008"
    assert outcomes[100][2] == "PB003"
    with_effects = [i for i in range(100) if i % 3 == 0 and i not in (10, 20)]
    follow_ups = [f for i in with_effects for f in outcomes[i][3]]
    assert len(follow_ups) == len(with_effects)
    assert counts(conn, "next")["pending"] == len(with_effects)
    assert all(not outcomes[i][3] for i in range(100) if i % 3 != 0)
    # the malformed entry's job stays claimed with its token; nothing of its effects applied
    row = job_row(conn, bad["id"])
    assert row is not None
    assert (row["state"], row["claim_token"]) == ("claimed", bad["claim_token"])
    assert scalar(conn, "select pgbatch.kv_get('bad')") is None
    assert scalar(conn, "select pgbatch.kv_get('lost')") is None
    assert scalar(conn, "select pgbatch.kv_get('k3')") == 3
    assert counts(conn, "q") == {"pending": 1, "scheduled": 0, "claimed": 1, "done": 98,
                                 "dead": 0, "cancelled": 0}


@pytest.mark.in_tx
def test_ack_many_reports_a_stale_token_for_a_job_acked_in_the_same_call(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    entries = json.dumps([{"job_id": str(job_id), "claim_token": str(job["claim_token"])},
                          {"job_id": str(job_id), "claim_token": str(uuid4())},
                          {"job_id": str(job_id), "claim_token": str(job["claim_token"])}])
    rows = conn.execute("select status, error_code from pgbatch.ack_many(%s)",
                        [entries]).fetchall()
    assert rows == [("acked", None), ("claim_lost", "PB001"), ("acked", None)]
    assert counts(conn, "q")["done"] == 1


def test_ack_many_through_the_client_reports_outcomes(db: TestDatabase, conn: Conn) -> None:
    for i in range(5):
        enqueue(conn, "q", {"i": i})
    jobs = claim(conn, "q", 5)
    expire_lease(conn, jobs[1]["id"])
    conn.execute("select pgbatch.reap_expired()")
    requests = [AckRequest(j["id"], j["claim_token"]) for j in jobs]
    requests[2] = AckRequest(jobs[2]["id"], jobs[2]["claim_token"],
                             AckEffects(enqueue=[EnqueueRequest("next", {"x": 1})]))
    with open_client(db.dsn) as client:
        outcomes = client.ack_many(requests)
    assert [o.status for o in outcomes] == ["acked", "claim_lost", "acked", "acked", "acked"]
    assert [o.ok for o in outcomes] == [True, False, True, True, True]
    assert outcomes[1].error_code == "PB001"
    assert len(outcomes[2].follow_ups) == 1
    assert job_row(conn, outcomes[2].follow_ups[0]) is not None


# ---------------------------------------------------------------- ack_ids


def _ack_ids(conn: Conn, pairs: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "select job_id, status, error_code, message, follow_ups from pgbatch.ack_ids(%s, %s)",
        [[p[0] for p in pairs], [p[1] for p in pairs]]).fetchall()


@pytest.mark.in_tx
def test_ack_ids_settles_all_and_returns_only_the_misses_in_input_order(conn: Conn) -> None:
    conn.execute("select pgbatch.enqueue_many(%s)",
                 [json.dumps([{"queue": "q", "payload": {"i": i}} for i in range(100)])])
    jobs = claim(conn, "q", 100)
    lost, unknown = jobs[37], uuid4()
    expire_lease(conn, lost["id"])
    assert scalar(conn, "select pgbatch.reap_expired()") == 1
    pairs = [(j["id"], j["claim_token"]) for j in jobs]
    pairs.insert(10, (unknown, uuid4()))
    rows = _ack_ids(conn, pairs)
    assert [(r[0], r[1], r[2]) for r in rows] == [(unknown, "not_found", "PB003"),
                                                  (lost["id"], "claim_lost", "PB001")]
    assert "not found" in rows[0][3]
    assert "claim lost" in rows[1][3]
    assert counts(conn, "q") == {"pending": 1, "scheduled": 0, "claimed": 0, "done": 99,
                                 "dead": 0, "cancelled": 0}
    archived = archive_row(conn, jobs[0]["id"])
    assert archived is not None
    assert (archived["state"], archived["claim_token"]) == ("done", jobs[0]["claim_token"])


@pytest.mark.in_tx
def test_ack_ids_stale_token_and_duplicates_in_one_call(conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    tok = claim_one(conn, "q")["claim_token"]
    rows = _ack_ids(conn, [(job_id, tok), (job_id, uuid4()), (job_id, tok)])
    assert [(r[1], r[2]) for r in rows] == [("claim_lost", "PB001")]
    assert counts(conn, "q")["done"] == 1


@pytest.mark.in_tx
def test_ack_ids_retry_is_idempotent_and_a_new_claim_fences_old_tokens(conn: Conn) -> None:
    for _ in range(3):
        enqueue(conn, "q")
    jobs = claim(conn, "q", 3)
    pairs = [(j["id"], j["claim_token"]) for j in jobs]
    assert _ack_ids(conn, pairs) == []
    before = state_snapshot(conn)
    assert _ack_ids(conn, pairs) == []
    assert state_snapshot(conn) == before
    # a token that held the job before a reap cannot ack the redelivered attempt
    job_id = enqueue(conn, "r")
    old = claim_one(conn, "r")
    expire_lease(conn, job_id)
    conn.execute("select pgbatch.reap_expired()")
    new = claim_one(conn, "r")
    assert [r[1] for r in _ack_ids(conn, [(job_id, old["claim_token"])])] == ["claim_lost"]
    row = job_row(conn, job_id)
    assert row is not None
    assert (row["state"], row["claim_token"]) == ("claimed", new["claim_token"])
    assert _ack_ids(conn, [(job_id, new["claim_token"])]) == []
    assert _ack_ids(conn, []) == []


def test_ack_ids_through_the_client(db: TestDatabase, conn: Conn) -> None:
    for i in range(4):
        enqueue(conn, "q", {"i": i})
    jobs = claim(conn, "q", 4)
    expire_lease(conn, jobs[2]["id"])
    conn.execute("select pgbatch.reap_expired()")
    with open_client(db.dsn) as client:
        missed = client.ack_ids([j["id"] for j in jobs], [j["claim_token"] for j in jobs])
    assert [(o.job_id, o.status, o.error_code, o.ok) for o in missed] == [
        (jobs[2]["id"], "claim_lost", "PB001", False)]
    assert counts(conn, "q")["done"] == 3


@pytest.mark.in_tx
def test_ack_many_retry_is_idempotent(conn: Conn) -> None:
    for _ in range(3):
        enqueue(conn, "q")
    jobs = claim(conn, "q", 3)
    entries = json.dumps([{"job_id": str(j["id"]), "claim_token": str(j["claim_token"]),
                           "effects": {"enqueue": [{"queue": "next"}]}} for j in jobs[:1]]
                         + [{"job_id": str(j["id"]), "claim_token": str(j["claim_token"])}
                            for j in jobs[1:]])
    query = "select status, follow_ups from pgbatch.ack_many(%s)"
    first = conn.execute(query, [entries]).fetchall()
    before = state_snapshot(conn)
    again = conn.execute(query, [entries]).fetchall()
    assert again == first
    assert [s for s, _ in again] == ["acked"] * 3
    assert state_snapshot(conn) == before


# ---------------------------------------------------------------- nack and backoff


@pytest.mark.in_tx
def test_nack_retries_at_the_given_time_and_stores_the_error(conn: Conn) -> None:
    job_id = enqueue(conn, "q", max_attempts=3)
    job = claim_one(conn, "q")
    retry_at = db_now(conn) + timedelta(minutes=7)
    error = {"type": "ValueError", "message": "bad \"input\" ✓", "traceback": ["a", "b"],
             "nested": {"n": 1.5, "none": None}}
    state = scalar(conn, "select pgbatch.nack(%s, %s, %s, %s)",
                   [job_id, job["claim_token"], json.dumps(error), retry_at])
    assert state == "pending"
    row = job_row(conn, job_id)
    assert row is not None
    assert (row["state"], row["run_at"], row["attempt"]) == ("pending", retry_at, 1)
    assert row["last_error"] == error
    assert row["claim_token"] is None
    assert counts(conn, "q")["scheduled"] == 1
    set_clock(conn, retry_at)
    again = claim_one(conn, "q")
    assert again["attempt"] == 2
    assert again["last_error"] == error


@pytest.mark.in_tx
def test_nack_default_backoff_is_exponential_with_jitter(conn: Conn) -> None:
    job_id = enqueue(conn, "q", max_attempts=12)
    clock = db_now(conn)
    set_clock(conn, clock)
    delays: list[float] = []
    for attempt in range(1, 11):
        job = claim_one(conn, "q")
        assert job["attempt"] == attempt
        assert scalar(conn, "select pgbatch.nack(%s, %s)", [job_id, job["claim_token"]]) \
            == "pending"
        row = job_row(conn, job_id)
        assert row is not None
        delay = (row["run_at"] - clock).total_seconds()
        d = 1.0 * 2 ** (attempt - 1)
        assert d / 2 <= delay <= d, f"attempt {attempt}: delay {delay}s not in [{d / 2}, {d}]"
        delays.append(delay / d)
        assert claim(conn, "q") == [], "claimable before its backoff elapsed"
        clock = row["run_at"]
        set_clock(conn, clock)
    assert len(set(delays)) > 1, "no jitter"


@pytest.mark.in_tx
def test_nack_backoff_base_and_cap_are_honoured(conn: Conn) -> None:
    job_id = enqueue(conn, "q", max_attempts=20)
    clock = db_now(conn)
    set_clock(conn, clock)
    for attempt in range(1, 8):
        job = claim_one(conn, "q")
        conn.execute("select pgbatch.nack(%s, %s, backoff_base => '10 seconds',"
                     " backoff_cap => '2 minutes')", [job_id, job["claim_token"]])
        row = job_row(conn, job_id)
        assert row is not None
        delay = (row["run_at"] - clock).total_seconds()
        d = min(120.0, 10.0 * 2 ** (attempt - 1))
        assert d / 2 <= delay <= d
        clock = row["run_at"]
        set_clock(conn, clock)


@pytest.mark.in_tx
def test_nack_at_the_last_attempt_dead_letters_and_attempts_are_exact(conn: Conn) -> None:
    job_id = enqueue(conn, "q", max_attempts=3)
    for attempt in (1, 2, 3):
        job = claim_one(conn, "q")
        assert job["attempt"] == attempt
        state = scalar(conn, "select pgbatch.nack(%s, %s, %s, pgbatch.now())",
                       [job_id, job["claim_token"], json.dumps({"attempt": attempt})])
        assert state == ("dead" if attempt == 3 else "pending")
    assert claim(conn, "q") == []
    assert job_row(conn, job_id) is None
    dead = archive_row(conn, job_id)
    assert dead is not None
    assert (dead["state"], dead["attempt"], dead["max_attempts"]) == ("dead", 3, 3)
    # the earlier attempts' errors are kept under "history", newest first
    assert dead["last_error"] == {"attempt": 3, "history": [{"attempt": 2}, {"attempt": 1}]}
    assert counts(conn, "q") == {"pending": 0, "scheduled": 0, "claimed": 0, "done": 0,
                                 "dead": 1, "cancelled": 0}


@pytest.mark.in_tx
def test_backoff_stays_within_half_and_full_delay(conn: Conn) -> None:
    rows = conn.execute(
        "select a, min(extract(epoch from b)), max(extract(epoch from b)), count(distinct b)"
        " from (select a, pgbatch.backoff(a) as b"
        "         from unnest(array[1, 2, 3, 5, 8, 12]) a, generate_series(1, 500)) x"
        " group by a order by a").fetchall()
    assert len(rows) == 6
    for attempt, lo, hi, distinct in rows:
        d = float(2 ** (attempt - 1))
        assert d / 2 <= float(lo) <= float(hi) <= d, (attempt, lo, hi)
        assert distinct > 100, f"backoff({attempt}) has no jitter"


@pytest.mark.in_tx
def test_backoff_cap_and_extremes(conn: Conn) -> None:
    rows = conn.execute(
        "select a, min(extract(epoch from b)), max(extract(epoch from b)) from"
        " (select a, pgbatch.backoff(a) as b from unnest(array[13, 30, 1000, 2147483647]) a,"
        " generate_series(1, 50)) x group by a order by a").fetchall()
    for attempt, lo, hi in rows:
        assert 1800.0 <= float(lo) <= float(hi) <= 3600.0, (attempt, lo, hi)
    # attempt 0 or negative counts as the first
    for attempt in (0, -3):
        value = scalar(conn, "select extract(epoch from pgbatch.backoff(%s))", [attempt])
        assert 0.5 <= float(value) <= 1.0
    custom = scalar(conn, "select max(extract(epoch from pgbatch.backoff(4, '3 seconds',"
                          " '10 seconds'))) from generate_series(1, 100)")
    assert 5.0 <= float(custom) <= 10.0
