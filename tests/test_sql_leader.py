"""Leadership leases by database time: try_lead, resign_lead, holds_lead; vacuum_stats.

Time is moved with the test clock (``pgbatch.fake_now``), so every expiry is exact.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers import raises_sqlstate, scalar, set_clock, state_snapshot

Conn = psycopg.Connection[Any]
Row = dict[str, Any]

T0 = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
A, B = "node-a", "node-b"
BOOT_A, BOOT_B = uuid.uuid4(), uuid.uuid4()


def lead(conn: Conn, node: str, boot: UUID, lease: str = "5 seconds",
         scope: str = "maintenance") -> Row:
    """pgbatch.try_lead as a dict."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from pgbatch.try_lead(%s, %s, %s::interval, %s)",
                          [node, boot, lease, scope]).fetchone()
    assert row is not None
    return row


def leader_row(conn: Conn, scope: str = "maintenance") -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from pgbatch.leader where scope = %s", [scope]).fetchone()


def holds(conn: Conn, node: str, boot: UUID, term: int) -> bool:
    return bool(scalar(conn, "select pgbatch.holds_lead(%s, %s, %s)", [node, boot, term]))


def at(conn: Conn, seconds: float) -> datetime:
    """Move this session's clock to T0 + seconds; return that time."""
    when = T0 + timedelta(seconds=seconds)
    set_clock(conn, when)
    return when


@pytest.mark.in_tx
def test_the_first_node_takes_the_lease_renews_it_and_others_are_told_who_leads(
        conn: Conn) -> None:
    at(conn, 0)
    first = lead(conn, A, BOOT_A)
    assert first == {"is_leader": True, "term": 1, "leader_node_id": A,
                     "lease_expires_at": T0 + timedelta(seconds=5)}
    at(conn, 2)
    assert lead(conn, B, BOOT_B) == {"is_leader": False, "term": 1, "leader_node_id": A,
                                     "lease_expires_at": T0 + timedelta(seconds=5)}
    renewed = lead(conn, A, BOOT_A)
    assert (renewed["is_leader"], renewed["term"]) == (True, 1)
    assert renewed["lease_expires_at"] == T0 + timedelta(seconds=7)
    row = leader_row(conn)
    assert row is not None
    assert (row["node_id"], row["boot_id"], row["term"]) == (A, BOOT_A, 1)
    assert (row["acquired_at"], row["renewed_at"]) == (T0, T0 + timedelta(seconds=2))
    # a renewal with a shorter lease never shortens the one granted
    assert lead(conn, A, BOOT_A, "1 second")["lease_expires_at"] == T0 + timedelta(seconds=7)


@pytest.mark.in_tx
def test_a_lease_that_ran_out_is_taken_over_under_the_next_term_and_the_old_holder_learns_it(
        conn: Conn) -> None:
    at(conn, 0)
    lead(conn, A, BOOT_A)
    assert holds(conn, A, BOOT_A, 1)
    # one microsecond before the end, A still holds it and B may not take it
    set_clock(conn, T0 + timedelta(seconds=5) - timedelta(microseconds=1))
    assert not lead(conn, B, BOOT_B)["is_leader"]
    assert holds(conn, A, BOOT_A, 1)
    # at the end of A's lease (A was stuck and did not renew), B takes over
    end = at(conn, 5)
    assert not holds(conn, A, BOOT_A, 1)
    taken = lead(conn, B, BOOT_B)
    assert taken == {"is_leader": True, "term": 2, "leader_node_id": B,
                     "lease_expires_at": end + timedelta(seconds=5)}
    row = leader_row(conn)
    assert row is not None
    assert row["acquired_at"] >= end  # never two valid leases at one instant
    # A wakes up: its next call says it lost the lease, to whom, and changes nothing
    at(conn, 6)
    assert lead(conn, A, BOOT_A) == {"is_leader": False, "term": 2, "leader_node_id": B,
                                     "lease_expires_at": end + timedelta(seconds=5)}
    assert leader_row(conn) == row
    assert not holds(conn, A, BOOT_A, 1)
    assert not holds(conn, A, BOOT_A, 2)
    assert holds(conn, B, BOOT_B, 2)
    assert not holds(conn, B, BOOT_B, 1)  # a stale term is no proof either


@pytest.mark.in_tx
def test_a_lease_that_lapsed_is_taken_again_under_a_new_term(conn: Conn) -> None:
    at(conn, 0)
    lead(conn, A, BOOT_A)
    at(conn, 30)  # A was stuck past its lease, nobody else asked
    again = lead(conn, A, BOOT_A)
    assert (again["is_leader"], again["term"]) == (True, 2)  # it did not lead in between


@pytest.mark.in_tx
def test_a_new_incarnation_of_the_holder_waits_for_the_old_lease(conn: Conn) -> None:
    at(conn, 0)
    lead(conn, A, BOOT_A)
    restarted = uuid.uuid4()
    at(conn, 1)
    assert not lead(conn, A, restarted)["is_leader"]  # the old process may still be alive
    at(conn, 5)
    assert lead(conn, A, restarted)["term"] == 2


@pytest.mark.in_tx
def test_resign_ends_the_lease_now_so_another_node_takes_over_at_once(conn: Conn) -> None:
    at(conn, 0)
    lead(conn, A, BOOT_A)
    at(conn, 1)
    assert scalar(conn, "select pgbatch.resign_lead(%s, %s)", [B, BOOT_B]) is False
    assert scalar(conn, "select pgbatch.resign_lead(%s, %s)", [A, uuid.uuid4()]) is False
    assert not lead(conn, B, BOOT_B)["is_leader"]
    assert scalar(conn, "select pgbatch.resign_lead(%s, %s)", [A, BOOT_A]) is True
    assert not holds(conn, A, BOOT_A, 1)
    assert scalar(conn, "select pgbatch.resign_lead(%s, %s)", [A, BOOT_A]) is False
    taken = lead(conn, B, BOOT_B)
    assert (taken["is_leader"], taken["term"]) == (True, 2)


@pytest.mark.in_tx
def test_scopes_are_independent(conn: Conn) -> None:
    at(conn, 0)
    assert lead(conn, A, BOOT_A, scope="maintenance")["is_leader"]
    assert lead(conn, B, BOOT_B, scope="scheduler")["is_leader"]
    assert not lead(conn, A, BOOT_A, scope="scheduler")["is_leader"]
    assert scalar(conn, "select pgbatch.holds_lead(%s, %s, 1, 'scheduler')", [B, BOOT_B])
    assert not scalar(conn, "select pgbatch.holds_lead(%s, %s, 1, 'scheduler')", [A, BOOT_A])


@pytest.mark.in_tx
def test_try_lead_works_with_defaults_from_psql(conn: Conn) -> None:
    row = conn.execute("select is_leader, term"
                       " from pgbatch.try_lead('psql-node', gen_random_uuid())").fetchone()
    assert row == (True, 1)
    assert scalar(conn, "select lease_expires_at - acquired_at from pgbatch.leader") == \
        timedelta(seconds=5)


@pytest.mark.parametrize(
    ("call", "params", "match"),
    [
        ("select * from pgbatch.try_lead(%s, %s)", [None, BOOT_A], "invalid node_id"),
        ("select * from pgbatch.try_lead(%s, %s)", ["", BOOT_A], "invalid node_id"),
        ("select * from pgbatch.try_lead(%s, %s)", ["x" * 201, BOOT_A], "invalid node_id"),
        ("select * from pgbatch.try_lead(%s, %s)", [A, None], "invalid boot_id"),
        ("select * from pgbatch.try_lead(%s, %s, null)", [A, BOOT_A], "invalid lease"),
        ("select * from pgbatch.try_lead(%s, %s, '0 seconds')", [A, BOOT_A], "invalid lease"),
        ("select * from pgbatch.try_lead(%s, %s, '-5 seconds')", [A, BOOT_A], "invalid lease"),
        ("select * from pgbatch.try_lead(%s, %s, '900 milliseconds')", [A, BOOT_A],
         "invalid lease"),
        ("select * from pgbatch.try_lead(%s, %s, '2 hours')", [A, BOOT_A], "invalid lease"),
        ("select * from pgbatch.try_lead(%s, %s, '100000 years')", [A, BOOT_A], "invalid lease"),
        ("select * from pgbatch.try_lead(%s, %s, '5 s', null)", [A, BOOT_A], "invalid scope"),
        ("select * from pgbatch.try_lead(%s, %s, '5 s', ' \t')", [A, BOOT_A], "invalid scope"),
        ("select * from pgbatch.try_lead(%s, %s, '5 s', %s)", [A, BOOT_A, "s" * 129],
         "invalid scope"),
        ("select pgbatch.resign_lead(%s, %s)", [None, BOOT_A], "invalid node_id"),
        ("select pgbatch.resign_lead(%s, %s)", [A, None], "invalid boot_id"),
        ("select pgbatch.resign_lead(%s, %s, '')", [A, BOOT_A], "invalid scope"),
        ("select pgbatch.holds_lead(%s, %s, null)", [A, BOOT_A], "invalid term"),
        ("select pgbatch.holds_lead(%s, %s, 0)", [A, BOOT_A], "invalid term"),
        ("select pgbatch.holds_lead(%s, %s, 1)", [" " * 0, BOOT_A], "invalid node_id"),
        ("select * from pgbatch.vacuum_stats(null)", [], "invalid role"),
        ("select * from pgbatch.vacuum_stats('no_such_role_anywhere')", [], "invalid role"),
    ],
)
@pytest.mark.in_tx
def test_bad_lead_arguments_raise_pb007_and_change_nothing(
        conn: Conn, call: str, params: list[Any], match: str) -> None:
    at(conn, 0)
    lead(conn, A, BOOT_A)
    before = state_snapshot(conn)
    with raises_sqlstate("PB007", match):
        conn.execute(call, params)
    assert state_snapshot(conn) == before


@pytest.mark.in_tx
def test_infinite_lease_is_refused_where_the_server_has_infinite_intervals(conn: Conn) -> None:
    if conn.info.server_version < 170000:
        pytest.skip("intervals have no infinity before PostgreSQL 17")
    with raises_sqlstate("PB007", "invalid lease"):
        conn.execute("select * from pgbatch.try_lead(%s, %s, 'infinity')", [A, BOOT_A])
    assert leader_row(conn) is None


@pytest.mark.in_tx
def test_vacuum_stats_reports_the_live_table_and_who_may_vacuum_it(conn: Conn) -> None:
    rows = conn.execute("select * from pgbatch.vacuum_stats()").fetchall()
    assert len(rows) == 1
    schema_name, table_name, dead, may = rows[0]
    assert (schema_name, table_name, may) == ("pgbatch", "job", True)  # a superuser may
    assert dead >= 0
    role = f"pgbatch_nobody_{uuid.uuid4().hex[:8]}"
    conn.execute(f'create role "{role}"')
    try:
        assert scalar(conn, "select may_vacuum from pgbatch.vacuum_stats(%s)", [role]) is False
        # the default is the caller's role, also though the function runs as its owner
        conn.execute(f'grant execute on function pgbatch.vacuum_stats(name) to "{role}"')
        conn.execute(f'grant usage on schema pgbatch to "{role}"')
        conn.execute(f'set role "{role}"')
        try:
            assert scalar(conn, "select may_vacuum from pgbatch.vacuum_stats()") is False
        finally:
            conn.execute("reset role")
        if conn.info.server_version >= 170000:
            conn.execute(f'grant maintain on pgbatch.job to "{role}"')
            assert scalar(conn, "select may_vacuum from pgbatch.vacuum_stats(%s)", [role])
    finally:
        conn.execute(f'drop owned by "{role}"')
        conn.execute(f'drop role "{role}"')
