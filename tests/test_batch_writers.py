"""The table writer (pgbatch.batch.TableWriter) against a real database: COPY,
multi-row INSERT and INSERT … SELECT FROM unnest in the caller's transaction,
dicts and tuples, clear errors for unknown tables, columns and misfit items;
and a real worker running a chunk step that reads with the SQL reader and
writes with the table writer."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pgbatch import InvalidArgument, Worker
from pgbatch.batch import (
    BATCH_KIND,
    BatchExecutor,
    ChunkStep,
    InvalidWriterItem,
    InvalidWriterTarget,
    Job,
    SqlReader,
    TableWriter,
    register_jobs,
)
from pgbatch.batch.writers import WriteMethod
from tests.batch_helpers import assert_invariants, execution, steps
from tests.conftest import TestDatabase
from tests.helpers import scalar
from tests.worker_harness import LoopThread, app_on, wait_until

Conn = psycopg.Connection[Any]
METHODS = ["copy", "insert", "unnest"]


@pytest.fixture
def dst(conn: Conn) -> Conn:
    conn.execute("create table public.dst (id int primary key, name text, doc jsonb)")
    return conn


def rows(conn: Conn, table: str = "public.dst") -> list[tuple[Any, ...]]:
    return conn.execute(f"select * from {table} order by 1").fetchall()


@pytest.mark.parametrize("method", METHODS)
def test_writes_dicts_and_tuples_in_the_callers_transaction(dst: Conn, method: Any) -> None:
    writer = TableWriter("public.dst", ["id", "name", "doc"], method=method)
    with dst.transaction():
        writer.write(dst, [{"id": 1, "name": "a", "doc": Jsonb({"k": [1]}), "extra": "ignored"},
                           (2, None, None), [3, "c", Jsonb(None)]])
    assert rows(dst) == [(1, "a", {"k": [1]}), (2, None, None), (3, "c", None)]

    dst.execute("begin")
    writer(dst, [(4, "d", None)])  # today's Writer signature: writer(conn, items)
    assert len(rows(dst)) == 4
    dst.execute("rollback")
    assert [r[0] for r in rows(dst)] == [1, 2, 3]
    writer.write(dst, [])
    assert len(rows(dst)) == 3


@pytest.mark.parametrize("method", METHODS)
def test_a_quoted_schema_qualified_table(conn: Conn, method: Any) -> None:
    conn.execute('create schema "Out"; create table "Out"."Items Table" ("Id" int, "x y" text)')
    TableWriter('Out.Items Table', ["Id", "x y"], method=method).write(conn, [(1, "z")])
    assert rows(conn, '"Out"."Items Table"') == [(1, "z")]


def test_insert_splits_a_chunk_over_the_parameter_limit(dst: Conn) -> None:
    writer = TableWriter("public.dst", ["id", "name", "doc"], method="insert")
    writer.write(dst, [(i, str(i), None) for i in range(30_000)])  # 90,000 parameters
    assert scalar(dst, "select count(*) from public.dst") == 30_000


def test_insert_with_on_conflict(dst: Conn) -> None:
    writer = TableWriter("public.dst", ["id", "name"], method="insert",
                         on_conflict="on conflict (id) do nothing")
    writer.write(dst, [(1, "a"), (2, "b")])
    writer.write(dst, [(2, "again"), (3, "c")])
    assert [(r[0], r[1]) for r in rows(dst)] == [(1, "a"), (2, "b"), (3, "c")]


@pytest.mark.parametrize("method", METHODS)
def test_an_unknown_table_or_column_is_a_clear_error(dst: Conn, method: Any) -> None:
    cases = [(TableWriter("public.nope", ["id"], method=method), "table 'public.nope' does not"),
             (TableWriter("nope", ["id"], method=method), "table 'nope' does not exist"),
             (TableWriter("public.dst", ["id", "nam", "dok"], method=method),
              "table 'public.dst' has no column(s) 'nam', 'dok' (its columns: id, name, doc)")]
    for writer, message in cases:
        with pytest.raises(InvalidWriterTarget) as err:
            writer.write(dst, [(1, "a", None)[:len(writer.columns)]])
        assert message in str(err.value)
    assert rows(dst) == []


@pytest.mark.parametrize("method", METHODS)
def test_items_that_do_not_fit_write_nothing(dst: Conn, method: Any) -> None:
    writer = TableWriter("public.dst", ["id", "name"], method=method)
    cases: list[tuple[list[Any], str]] = [
        ([(1, "a"), {"id": 2}], "item 1 of the chunk has no value for column(s) 'name'"),
        ([(1, "a", "b")], "item 0 of the chunk has 3 values for 2 columns (id, name)"),
        ([(1, "a"), "2,b"], "item 1 of the chunk is a str"),
        ([7], "item 0 of the chunk is a int"),
    ]
    for items, message in cases:
        with pytest.raises(InvalidWriterItem) as err:
            writer.write(dst, items)
        assert message in str(err.value)
    assert rows(dst) == []


@pytest.mark.parametrize("kwargs", [{"columns": []}, {"columns": "id"}, {"columns": ["a", "a"]},
                                    {"method": "upsert"}, {"table": "a.b.c"}, {"table": ""},
                                    {"on_conflict": "on conflict do nothing"}])
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"table": "t", "columns": ["id"], **kwargs}
    with pytest.raises(InvalidArgument):
        TableWriter(**args)


def test_reader_and_writer_describe_themselves_stably() -> None:
    """A repr without the DSN or an address: what a job's fingerprint may be built from."""
    readers = [SqlReader(dsn, "select id from t", "id", name="src") for dsn in ("a", "b")]
    assert repr(readers[0]) == repr(readers[1]) == (
        "SqlReader(name='src', key=['id'], page_size=1000, rows='dict')")
    writer = TableWriter("public.dst", ["id", "name"])
    assert repr(writer) == "TableWriter(table='public.dst', columns=['id', 'name'], method='copy')"


def transform(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["id"], row["name"].upper())


@pytest.mark.parametrize("method", ["copy", "unnest"])
def test_a_worker_copies_a_table_with_the_reader_and_the_writer(db: TestDatabase, conn: Conn,
                                                                 method: WriteMethod) -> None:
    """The step gets the reader and writer objects: the reader's keyset cursor
    commits with each chunk (with ``unnest``, in the one statement that also
    commits the chunk). A failed first run is restarted and reads on after the
    last committed key."""
    conn.execute("create table public.src (id int primary key, name text not null)")
    conn.execute("insert into public.src select i, 'n' || i from generate_series(1, 95) i")
    conn.execute("create table public.dst (id int primary key, name text not null)")
    # a row the table refuses (a check constraint) fails the step after 4 committed chunks
    conn.execute("update public.src set name = 'bad' where id = 45")
    conn.execute("alter table public.dst add constraint no_bad check (name <> 'BAD')")
    reader = SqlReader(db.dsn, "select id, name from public.src", "id", page_size=7)
    writer = TableWriter("public.dst", ["id", "name"], method=method)
    job = Job("copy-src", [ChunkStep("copy", reader, writer, chunk_size=10,
                                     processor=transform)])
    register_jobs(conn, [job])
    first = int(scalar(conn, "select pgbatch.launch_job('copy-src', '{}')"))
    with app_on(db.dsn) as app, LoopThread() as lt:
        app.register_executor(BATCH_KIND, BatchExecutor([job]))
        lt.start(Worker(app, concurrency=1, poll_interval=0.2, maintenance=False))
        wait_until(lambda: execution(conn, first)["status"] == "FAILED", 30, "the failure")
        assert scalar(conn, "select count(*) from public.dst") == 40
        assert "no_bad" in execution(conn, first)["exit_message"]
        conn.execute("alter table public.dst drop constraint no_bad")
        second = int(scalar(conn, "select pgbatch.restart_execution(%s)", [first]))
        wait_until(lambda: execution(conn, second)["status"] == "COMPLETED", 30, "the restart")
    assert [(s["read_count"], s["write_count"]) for s in steps(conn, second)] == [(55, 55)]
    assert scalar(conn, "select count(*) from public.src s join public.dst d"
                        " on d.id = s.id and d.name = upper(s.name)") == 95
    assert_invariants(conn)


def test_unnest_writes_every_plain_value_type_as_given(conn: Conn) -> None:
    """``method="unnest"`` sends a column of one plain type as an array literal:
    quotes, backslashes, commas, braces and spaces in strings, negative and
    exact numbers, bools, NULLs and other types (through psycopg) arrive unchanged."""
    conn.execute("create table public.t (i bigint, s text, n numeric, f float8, b bool,"
                 " d date)")
    rows: list[tuple[Any, ...]] = [
        (1, 'a "quoted", {braced} \\ back\\slash', Decimal("-1.50"), 1.25, True,
         date(2026, 12, 1)),
        (-2, "NULL", Decimal("1E+3"), -0.5, False, date(2026, 1, 2)),
        (3, "  spaced  ", Decimal("0"), 1e300, True, None),
    ]
    writer = TableWriter("public.t", ["i", "s", "n", "f", "b", "d"], method="unnest")
    with conn.transaction():
        writer.write(conn, rows)
    got = conn.execute("select i, s, n, f, b, d from public.t order by i").fetchall()
    assert sorted(got, key=lambda r: r[0]) == sorted(rows, key=lambda r: r[0])
    assert conn.execute("select s from public.t where i = -2").fetchone() == ("NULL",)


def test_unnest_refuses_array_columns(conn: Conn) -> None:
    conn.execute("create table public.arr (id int, tags text[])")
    writer = TableWriter("public.arr", ["id", "tags"], method="unnest")
    with pytest.raises(InvalidWriterTarget, match="array column"), conn.transaction():
        writer.write(conn, [(1, ["a"])])
    assert scalar(conn, "select count(*) from public.arr") == 0
