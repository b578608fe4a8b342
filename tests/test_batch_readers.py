"""The SQL query reader (pgbatch.batch.SqlReader) against a real database: keyset
pages, typed cursors kept in a JSON ExecutionContext, restart from the cursor a
chunk commit stored, and clear errors for bad queries, keys and checkpoints."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pgbatch import InvalidArgument
from pgbatch.batch import InvalidCursor, InvalidReaderQuery, SqlReader, TableWriter
from pgbatch.batch.readers import decode_key_value, encode_key_value
from tests.batch_helpers import (
    assert_invariants,
    claim_item,
    commit_chunk,
    end_step,
    register,
    start,
    start_step,
)
from tests.batch_helpers import launch as launch_job
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.worker_harness import wait_until

Conn = psycopg.Connection[Any]


@pytest.fixture
def src(conn: Conn) -> Conn:
    """A table ``src(id int primary key, name text)`` with ids 1..10."""
    conn.execute("create table public.src (id int primary key, name text not null)")
    conn.execute("insert into public.src select i, 'item ' || i from generate_series(1, 10) i")
    return conn


def read_all(reader: SqlReader) -> list[Any]:
    out: list[Any] = []
    while (item := reader.read()) is not None:
        out.append(item)
    return out


def reader_backends(conn: Conn, app: str) -> int:
    return int(scalar(conn, "select count(*) from pg_stat_activity where application_name = %s",
                      [app]))


def no_backend_left(conn: Conn, app: str) -> None:
    """The reader's backend ends (a closed connection's backend exits shortly after)."""
    wait_until(lambda: reader_backends(conn, app) == 0, 10, f"backends of {app} to end")


def roundtrip(context: dict[str, Any]) -> dict[str, Any]:
    """What jsonb gives back: the context must survive JSON as it is."""
    loaded: dict[str, Any] = json.loads(json.dumps(context))
    return loaded


def test_reads_every_row_in_key_order_across_pages(db: TestDatabase, src: Conn) -> None:
    src.execute("delete from public.src where id = 5")
    reader = SqlReader(db.dsn, "select id, name from public.src order by name desc", "id",
                       page_size=3, connect_kwargs={"application_name": "rdr"})
    reader.open({})
    try:
        assert reader_backends(src, "rdr") == 1
        items = read_all(reader)
        assert reader.read() is None
    finally:
        reader.close()
    assert [i["id"] for i in items] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert items[0] == {"id": 1, "name": "item 1"}
    no_backend_left(src, "rdr")


def test_tuple_rows_and_query_parameters(db: TestDatabase, src: Conn) -> None:
    positional = SqlReader(db.dsn, "select name, id from public.src where id > %s", "id",
                           params=[7], rows="tuple", page_size=2)
    named = SqlReader(db.dsn, "select id from public.src where id <= %(top)s", "id",
                      params={"top": 3}, page_size=2)
    for reader in (positional, named):
        reader.open({})
    try:
        assert read_all(positional) == [("item 8", 8), ("item 9", 9), ("item 10", 10)]
        assert read_all(named) == [{"id": 1}, {"id": 2}, {"id": 3}]
    finally:
        positional.close()
        named.close()


def test_restart_resumes_after_the_last_key_of_the_cursor(db: TestDatabase, src: Conn) -> None:
    reader = SqlReader(db.dsn, "select id from public.src", "id", page_size=3)
    reader.open({})
    try:
        first = [reader.read() for _ in range(4)]  # the second page is half read
        context: dict[str, Any] = {"other": 1}
        reader.update(context)
    finally:
        reader.close()
    assert first == [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]
    assert context == {"other": 1, "sql_reader": {"after": [{"t": "int", "v": 4}], "read": 4}}
    # keyset: rows added before the cursor are not read, a deleted row does not shift it
    src.execute("insert into public.src values (0, 'late')")
    src.execute("delete from public.src where id = 6")
    again = SqlReader(db.dsn, "select id from public.src", "id", page_size=3)
    again.open(roundtrip(context))
    try:
        rest = [i["id"] for i in read_all(again)]
        after: dict[str, Any] = {}
        again.update(after)
    finally:
        again.close()
    assert rest == [5, 7, 8, 9, 10]
    assert after["sql_reader"] == {"after": [{"t": "int", "v": 10}], "read": 9}


def test_a_composite_key_of_typed_values_round_trips_through_json(
        db: TestDatabase, conn: Conn) -> None:
    conn.execute("create table public.ev (at timestamptz, day date, tag text, uid uuid,"
                 " amount numeric, primary key (at, day, tag, uid, amount))")
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    rows = [(t0 + timedelta(microseconds=i // 2), date(2026, 3, 1 + i % 2), f"t{i}",
             UUID(int=i), Decimal(i) / 4) for i in range(9)]
    with conn.cursor() as cur:
        cur.executemany("insert into public.ev values (%s, %s, %s, %s, %s)", rows)
    key = ["at", "day", "tag", "uid", "amount"]
    reader = SqlReader(db.dsn, "select * from public.ev", key, page_size=2, rows="tuple")
    reader.open({})
    try:
        head = [reader.read() for _ in range(5)]
        context: dict[str, Any] = {}
        reader.update(context)
    finally:
        reader.close()
    types = [v["t"] for v in context["sql_reader"]["after"]]
    assert types == ["datetime", "date", "str", "uuid", "decimal"]
    again = SqlReader(db.dsn, "select * from public.ev", key, page_size=2, rows="tuple")
    again.open(roundtrip(context))
    try:
        tail = read_all(again)
    finally:
        again.close()
    assert head + tail == sorted(rows)


@pytest.mark.parametrize("value", [
    7, -2**62, "ä ß", True, 1.5, Decimal("-0.125"), date(2026, 2, 28),
    datetime(2026, 2, 28, 23, 59, 59, 123456, tzinfo=UTC), datetime(2026, 2, 28, 1, 2, 3),
    UUID("12345678-1234-5678-1234-567812345678")])
def test_key_values_encode_to_json_and_back(value: Any) -> None:
    typed = roundtrip({"k": encode_key_value("k", value)})["k"]
    back = decode_key_value("k", typed)
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("value", [b"\x00", [1, 2], {"a": 1}, float("nan"), Decimal("Infinity"),
                                   None])
def test_key_values_without_a_json_form_are_refused(value: Any) -> None:
    with pytest.raises(InvalidCursor, match="key column 'k'"):
        encode_key_value("k", value)


@pytest.mark.parametrize("typed", [5, {"t": "int"}, {"t": "money", "v": 1}, {"t": "int", "v": "5"},
                                   {"t": "datetime", "v": "2026-01-01T00:00:00"},
                                   {"t": "date", "v": "yesterday"}])
def test_untyped_or_mistyped_checkpoint_values_are_refused(typed: Any) -> None:
    with pytest.raises(InvalidCursor, match="key column 'k'"):
        decode_key_value("k", typed)


def test_an_unknown_table_or_column_is_a_clear_error(db: TestDatabase, src: Conn) -> None:
    cases = [
        ("select id from public.nope", "id", 'relation "public.nope" does not exist'),
        ("select idx from public.src", "idx", 'column "idx" does not exist'),
        ("select name from public.src", "id", "key column(s) 'id' not in the result"),
    ]
    for query, key, message in cases:
        reader = SqlReader(db.dsn, query, key, connect_kwargs={"application_name": "bad"})
        with pytest.raises(InvalidReaderQuery, match=re.escape(message)):
            reader.open({})
        no_backend_left(src, "bad")  # a failed open leaves no connection behind


def test_a_null_or_binary_key_fails_the_read(db: TestDatabase, conn: Conn) -> None:
    conn.execute("create table public.k (n int, b bytea)")
    conn.execute("insert into public.k values (1, '\\x01'), (null, '\\x02')")
    for key, match in (("n", "key column 'n' is NULL"), ("b", "key column 'b' holds a bytes")):
        reader = SqlReader(db.dsn, "select n, b from public.k", key)
        reader.open({})
        try:
            with pytest.raises(InvalidCursor, match=match):
                read_all(reader)
        finally:
            reader.close()


@pytest.mark.parametrize("entry", [{"after": [1]}, {"after": []},
                                   {"after": [{"t": "int", "v": 1}, {"t": "int", "v": 2}]},
                                   "4", {"read": 4}])
def test_a_checkpoint_that_does_not_fit_the_key_is_refused(db: TestDatabase, src: Conn,
                                                           entry: Any) -> None:
    reader = SqlReader(db.dsn, "select id from public.src", "id",
                       connect_kwargs={"application_name": "fit"})
    with pytest.raises(InvalidCursor):
        reader.open({"sql_reader": entry})
    assert reader_backends(src, "fit") == 0  # refused before connecting


@pytest.mark.parametrize("kwargs", [{"page_size": 0}, {"page_size": 10**6}, {"key": []},
                                    {"key": ["id", "id"]}, {"rows": "list"}, {"name": ""}])
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"key": "id", **kwargs}
    with pytest.raises(InvalidArgument):
        SqlReader("dbname=x", "select 1 as id", **args)


def test_pages_are_read_ahead_and_a_reopened_reader_reads_on(db: TestDatabase,
                                                             src: Conn) -> None:
    """With ``prefetch`` (the default) the next page is asked for while the
    current one is handed out; the items are the same as without it, and
    ``open`` with the context of ``update`` reads on after the last item read."""
    ahead = SqlReader(db.dsn, "select id from public.src", "id", page_size=3, rows="tuple")
    plain = SqlReader(db.dsn, "select id from public.src", "id", page_size=3, rows="tuple",
                      prefetch=False)
    context: dict[str, Any] = {}
    for reader in (ahead, plain):
        reader.open({})
        try:
            first = [reader.read() for _ in range(4)]
            reader.update(context)
        finally:
            reader.close()
        assert first == [(1,), (2,), (3,), (4,)]
    ahead.open(context)
    try:
        rest = []
        while (row := ahead.read()) is not None:
            rest.append(row[0])
    finally:
        ahead.close()
    assert rest == list(range(5, 11))
    assert ahead._pending is None  # nothing left in flight after close()


def run_chunks(conn: Conn, reader: SqlReader, writer: TableWriter, chunks: int,
               execution_id: int) -> str:
    """Run one claim of the chunk step ``load``: ``chunks`` chunks of 4, each its writes,
    the reader's cursor and commit_chunk in one transaction; then end the step FAILED
    (``chunks`` reached) or COMPLETED (input ended). Returns the job status."""
    item = claim_item(conn)
    assert item.execution_id == execution_id
    assert start(conn, item)["status"] == "STARTED"
    s = start_step(conn, item, "load")
    assert s["action"] == "run"
    seq = int(s["chunk_seq"])
    reader.open(s["context"])
    try:
        for _ in range(chunks):
            items = [x for x in (reader.read() for _ in range(4)) if x is not None]
            if not items:
                return str(end_step(conn, item, s["step_execution_id"])["job_status"])
            with conn.transaction():
                writer.write(conn, items)
                context = dict(s["context"])
                reader.update(context)
                commit_chunk(conn, item, s["step_execution_id"], seq, context,
                             read_count=len(items), write_count=len(items))
            seq += 1
    finally:
        reader.close()
    return str(end_step(conn, item, s["step_execution_id"], "FAILED")["job_status"])


def test_a_restarted_step_reads_on_after_the_committed_cursor(db: TestDatabase,
                                                              src: Conn) -> None:
    src.execute("create table public.dst (id int primary key, name text not null)")
    register(src, steps=[{"name": "load", "kind": "chunk", "reader": "SqlReader",
                          "writer": "TableWriter", "chunk_size": 4}])
    first = launch_job(src, params={"day": "2026-12-01"})

    def parts() -> Iterator[Any]:
        yield SqlReader(db.dsn, "select id, name from public.src", "id", page_size=3)
        yield TableWriter("public.dst", ["id", "name"])

    reader, writer = parts()
    assert run_chunks(src, reader, writer, 2, first) == "FAILED"
    assert scalar(src, "select array_agg(id order by id) from public.dst") == list(range(1, 9))
    checkpoint = scalar(src, "select c.context from pgbatch.step_execution s join"
                             " pgbatch.step_execution_context c on c.step_execution_id = s.id"
                             " where s.job_execution_id = %s", [first])
    assert checkpoint == {"sql_reader": {"after": [{"t": "int", "v": 8}], "read": 8}}

    second = int(scalar(src, "select pgbatch.restart_execution(%s)", [first]))
    reader, writer = parts()
    assert run_chunks(src, reader, writer, 10, second) == "COMPLETED"
    # every row exactly once (dst's primary key refuses a duplicate)
    assert scalar(src, "select array_agg(id order by id) from public.dst") == list(range(1, 11))
    assert scalar(src, "select count(*) from public.src s join public.dst d using (id, name)") == 10
    assert_invariants(src)


def test_the_cursor_is_stored_in_a_jsonb_context_as_it_is(db: TestDatabase, src: Conn) -> None:
    reader = SqlReader(db.dsn, "select id::numeric / 3 as q from public.src", "q",
                       name="thirds")
    reader.open({})
    try:
        first = reader.read()
        context: dict[str, Any] = {}
        reader.update(context)
    finally:
        reader.close()
    assert first is not None
    stored = scalar(src, "select %s::jsonb", [Jsonb(context)])
    assert stored == context
    assert decode_key_value("q", stored["thirds"]["after"][0]) == first["q"]
