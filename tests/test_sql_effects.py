"""ack effects: follow-up jobs and kv changes commit with the ack, all or nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from pgbatch import AckEffects, ClaimLost, EnqueueRequest, InvalidEffects
from tests.conftest import TestDatabase
from tests.helpers import (
    archive_row,
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


def kv(conn: Conn, key: str) -> Any:
    return scalar(conn, "select pgbatch.kv_get(%s)", [key])


def seed_kv(conn: Conn, values: dict[str, Any]) -> None:
    """Store kv values through an ack (the only writer of pgbatch.kv)."""
    job_id = enqueue(conn, "seed")
    job = claim_one(conn, "seed")
    conn.execute("select pgbatch.ack(%s, %s, %s)",
                 [job_id, job["claim_token"], json.dumps({"kv_put": values})])


@pytest.mark.in_tx
def test_ack_effects_create_follow_ups_and_apply_kv_changes(conn: Conn) -> None:
    seed_kv(conn, {"old": "gone soon", "kept": [1, 2], "counter": 1})
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    later = db_now(conn).replace(microsecond=0) + timedelta(hours=2)
    explicit = uuid4()
    effects = {
        "enqueue": [
            {"queue": "next", "payload": {"step": 2}, "run_at": later.isoformat(),
             "priority": 7, "dedup_key": "step-2", "id": str(explicit), "max_attempts": 4},
            {"queue": "next", "payload": ["plain"]},
            {"queue": "other"},
        ],
        "kv_put": {"counter": 2, "new": {"nested": [True, None]}},
        "kv_delete": ["old", "never-existed"],
    }
    ids = scalar(conn, "select pgbatch.ack(%s, %s, %s)",
                 [job_id, job["claim_token"], json.dumps(effects)])
    assert len(ids) == 3
    assert ids[0] == explicit
    first = job_row(conn, explicit)
    assert first is not None
    assert (first["queue"], first["payload"], first["run_at"], first["priority"],
            first["dedup_key"], first["max_attempts"], first["state"], first["attempt"]) == (
        "next", {"step": 2}, later, 7, "step-2", 4, "pending", 0)
    second = job_row(conn, ids[1])
    assert second is not None
    assert (second["payload"], second["priority"], second["dedup_key"], second["max_attempts"]) \
        == (["plain"], 0, None, 20)
    assert counts(conn, "next")["scheduled"] == 1
    assert counts(conn, "next")["pending"] == 1
    assert counts(conn, "other")["pending"] == 1
    assert kv(conn, "counter") == 2
    assert kv(conn, "new") == {"nested": [True, None]}
    assert kv(conn, "kept") == [1, 2]
    assert kv(conn, "old") is None
    done = archive_row(conn, job_id)
    assert done is not None
    assert done["state"] == "done"
    assert done["result"] == {"op": "ack", "ids": [str(i) for i in ids]}


@pytest.mark.in_tx
def test_follow_up_with_live_dedup_key_returns_the_existing_job(conn: Conn) -> None:
    existing = enqueue(conn, "next", {"v": "existing"}, dedup_key="k")
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    ids = scalar(conn, "select pgbatch.ack(%s, %s, %s)", [
        job_id, job["claim_token"],
        json.dumps({"enqueue": [{"queue": "next", "dedup_key": "k", "payload": {"v": "new"}}]})])
    assert ids == [existing]
    assert counts(conn, "next")["pending"] == 1


def test_ack_effects_through_the_client(db: TestDatabase, conn: Conn) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    explicit = uuid4()
    later = db_now(conn) + timedelta(minutes=3)
    effects = AckEffects(
        enqueue=[EnqueueRequest("next", {"a": 1}, run_at=later, priority=3, dedup_key="d",
                                id=explicit)],
        kv_put={"k": {"v": 1}},
        kv_delete=["nothing"],
    )
    with open_client(db.dsn) as client:
        ids = client.ack(job_id, job["claim_token"], effects)
        assert ids == [explicit]
        assert client.kv_get("k") == {"v": 1}
    row = job_row(conn, explicit)
    assert row is not None
    assert (row["run_at"], row["priority"], row["dedup_key"]) == (later, 3, "d")


@pytest.mark.parametrize("how", ["stale_token", "reaped", "reaped_by_clock"])
def test_lost_claim_raises_claim_lost_and_applies_no_effects(
    db: TestDatabase, conn: Conn, how: str
) -> None:
    seed_kv(conn, {"keep": 1})
    job_id = enqueue(conn, "q", max_attempts=5)
    job = claim_one(conn, "q", lease="10 seconds")
    if how == "stale_token":
        token = uuid4()
    else:
        token = job["claim_token"]
        if how == "reaped":
            expire_lease(conn, job_id)
            assert scalar(conn, "select pgbatch.reap_expired()") == 1
        else:
            reaper = db.connect()
            set_clock(reaper, db_now(reaper) + timedelta(minutes=1))
            assert scalar(reaper, "select pgbatch.reap_expired()") == 1
    follow_up = uuid4()
    effects = {"enqueue": [{"queue": "next", "id": str(follow_up)}],
               "kv_put": {"new": 1}, "kv_delete": ["keep"]}
    before = state_snapshot(conn)
    with raises_sqlstate("PB001", "claim lost"):
        conn.execute("select pgbatch.ack(%s, %s, %s)", [job_id, token, json.dumps(effects)])
    with open_client(db.dsn) as client, pytest.raises(ClaimLost):
        client.ack(job_id, token, AckEffects(enqueue=[EnqueueRequest("next", id=follow_up)],
                                             kv_put={"new": 1}, kv_delete=["keep"]))
    assert state_snapshot(conn) == before
    assert job_row(conn, follow_up) is None
    assert archive_row(conn, follow_up) is None
    assert kv(conn, "new") is None
    assert kv(conn, "keep") == 1


MALFORMED_EFFECTS: list[Any] = [
    [],
    "enqueue",
    42,
    {"bogus": 1},
    {"enqueue": {"queue": "next"}},
    {"enqueue": [{"payload": {}}]},
    {"enqueue": [{"queue": ""}]},
    {"enqueue": [{"queue": "x" * 129}]},
    {"enqueue": [{"queue": "next", "colour": "red"}]},
    {"enqueue": [{"queue": "next", "run_at": "not a time"}]},
    {"enqueue": [{"queue": "next", "id": "not-a-uuid"}]},
    {"enqueue": [{"queue": "next", "priority": "high"}]},
    {"enqueue": [{"queue": "next", "max_attempts": 0}]},
    {"enqueue": ["next"]},
    {"kv_put": ["a", 1]},
    {"kv_delete": "a"},
    {"kv_delete": [1]},
    # all or nothing: valid parts are not applied when another part is malformed
    {"enqueue": [{"queue": "next"}], "kv_put": {"a": 1}, "kv_delete": [None]},
    {"kv_put": {"a": 1}, "enqueue": [{"queue": "next"}, {"queue": "next", "run_at": 5}]},
]


@pytest.mark.in_tx
@pytest.mark.parametrize("effects", MALFORMED_EFFECTS, ids=lambda e: json.dumps(e)[:40])
def test_malformed_effects_raise_invalid_effects_and_change_nothing(
    conn: Conn, effects: Any
) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    before = state_snapshot(conn)
    with raises_sqlstate("PB008", "invalid effects"):
        conn.execute("select pgbatch.ack(%s, %s, %s)",
                     [job_id, job["claim_token"], json.dumps(effects)])
    assert state_snapshot(conn) == before
    row = job_row(conn, job_id)
    assert row is not None
    assert (row["state"], row["claim_token"]) == ("claimed", job["claim_token"])
    # the claim is intact: a correct ack still works
    assert scalar(conn, "select pgbatch.ack(%s, %s)", [job_id, job["claim_token"]]) == []


def test_malformed_effects_through_the_client_raise_invalid_effects(
    db: TestDatabase, conn: Conn
) -> None:
    job_id = enqueue(conn, "q")
    job = claim_one(conn, "q")
    before = state_snapshot(conn)
    with open_client(db.dsn) as client:
        for effects in (AckEffects(enqueue=[EnqueueRequest("")]),
                        AckEffects(enqueue=[EnqueueRequest("next", max_attempts=0)]),
                        AckEffects(kv_delete=[1])):  # type: ignore[list-item]  # bad on purpose
            with pytest.raises(InvalidEffects) as info:
                client.ack(job_id, job["claim_token"], effects)
            assert info.value.sqlstate == "PB008"
    assert state_snapshot(conn) == before
