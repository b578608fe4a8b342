"""A chunk step run in the server: a :class:`~pgbatch.batch.readers.SqlReader`
into a :class:`~pgbatch.batch.writers.TableWriter`, no processor, both on the
worker's own database.

Such a step moves no row through Python: each chunk is ONE statement (one
round trip, its own autocommit transaction) whose data-modifying ``WITH``
selects the next ``chunk_size`` rows of the reader's query after the keyset
cursor (its params, key columns and order), inserts them into the writer's
table (its columns, its ``on_conflict``), computes the new cursor (the last
key, typed exactly as the reader stores it in the step's ExecutionContext, so
a restart may take either path) and the counts, and calls ``commit_chunk``
(checkpoint, counters, fence, lease, stop read-back). The end of the input is
a chunk of 0 rows (it commits nothing).

The reader is on the worker's database when it is built with
``same_database=True`` or its DSN is exactly the worker pool's. The path is
taken only when every key column is of a type whose JSON form SQL writes
exactly as the reader does (``smallint``, ``integer``, ``bigint``, ``text``,
``varchar``, ``boolean``, ``date``, ``uuid``) and the writer's columns fit
the query's result (by name for ``rows="dict"``, by position, the same count,
for ``rows="tuple"``); otherwise the step runs in Python as before.

Two forms of the statement: when the writer has no ``on_conflict`` and the
key columns land in columns of the same types (not ``varchar``), the rows go
straight from the page into the table and the counts and the last key come
from the insert's ``RETURNING`` (a NULL key makes ``commit_chunk``'s read
count negative, so the statement fails whole); otherwise the page is
materialized once, counted, checked for NULL keys (the insert then writes
nothing) and inserted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int8

from pgbatch._errors import InvalidCursor, InvalidReaderQuery
from pgbatch.batch.items import ExecutionContext
from pgbatch.batch.readers import SqlReader
from pgbatch.batch.writers import TableWriter

#: Key column types (by OID) the statement encodes exactly as ``encode_key_value``.
KEY_TAGS: Final[dict[int, str]] = {
    20: "int", 21: "int", 23: "int",   # bigint, smallint, integer
    25: "str", 1043: "str",            # text, varchar
    16: "bool", 1082: "date", 2950: "uuid",
}
#: The type each key placeholder is cast to (by the key column's OID): the
#: comparison is then of the key's own type whatever psycopg sends (it sends a
#: Python int that fits as ``int2``), and the statement's generic plan is the
#: one PostgreSQL keeps.
KEY_CASTS: Final[dict[int, str]] = {
    20: "bigint", 21: "smallint", 23: "integer", 25: "text", 1043: "text",
    16: "boolean", 1082: "date", 2950: "uuid",
}
#: Key tags whose last value in a page is ``max()`` of the key (one pass, no sort).
_MAX_TAGS: Final = frozenset({"int", "date"})


def is_candidate(reader: Any, writer: Any, processor: Any, pool_conninfo: str | None) -> bool:
    """Whether a step of ``reader``, ``writer`` and ``processor`` may run in the server."""
    if processor is not None or type(reader) is not SqlReader or type(writer) is not TableWriter:
        return False
    return reader.same_database or (pool_conninfo is not None
                                    and reader.conninfo == pool_conninfo)


@dataclass(frozen=True)
class Expr:
    """A per-chunk value of the in-database loop's statements, as an SQL expression over
    its parameters ($1 the committed context, $2 the expected sequence number)."""

    sql: sql.Composable


class Params:
    """Parameters in the order their placeholders are written (positional or named)."""

    def __init__(self, base: Any, query: sql.Composable) -> None:
        self.named = isinstance(base, Mapping)
        self.values: Any = dict(base) if self.named else list(base or ())
        #: the reader's query as the statement writes it
        self.query = query

    def add(self, value: Any) -> sql.Composable:
        if self.named:
            name = f"_pgbatch_p{len(self.values)}"
            self.values[name] = value
            return sql.Placeholder(name)
        self.values.append(value)
        return sql.Placeholder()


@dataclass
class ServerChunkResult:
    """What one chunk statement did: rows moved, the new context, commit_chunk's row."""

    read: int
    null_keys: int
    context: ExecutionContext
    commit: dict[str, Any] | None


class ServerChunk:
    """The statement of one chunk of a SqlReader -> TableWriter step, run in the server."""

    def __init__(self, reader: SqlReader, writer: TableWriter, chunk_size: int,
                 tags: list[str], select_list: sql.Composable,
                 returned_keys: list[str] | None = None, casts: list[str] | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.chunk_size = chunk_size
        self.tags = tags
        #: the SQL type each key placeholder is cast to (KEY_CASTS)
        self.casts = casts if casts is not None else [""] * len(tags)
        self.select_list = select_list
        #: the target's columns that hold the key columns, of the same types, when the
        #: new cursor can be taken from the inserted rows (``RETURNING``, the cheaper form)
        self.returned_keys = returned_keys
        #: the statement's text by (first chunk, with commit_chunk)
        self._texts: dict[tuple[bool, bool], str] = {}
        #: the in-database loop's statements (server_loop.loop_statements) and the
        #: commit arguments they were built for
        self.loop: tuple[tuple[Any, ...], Any] | None = None
        #: the reader's input count (``SqlReader(count_total=True)``), kept in its context
        #: entry as ``total`` like the reader keeps it; None when not counted
        self.total: int | None = None

    @classmethod
    def plan(cls, conn: psycopg.Connection[Any], reader: SqlReader, writer: TableWriter,
             chunk_size: int) -> ServerChunk | None:
        """The statement's plan, or None when the step must run in Python (see the module)."""
        probe = sql.SQL("select * from ({}) as _pgbatch_q limit 0").format(reader.query)
        try:
            with conn.transaction():
                description = conn.execute(probe, reader.params).description or ()
        except psycopg.Error as exc:
            primary = exc.diag.message_primary if exc.sqlstate else None
            raise InvalidReaderQuery(f"the reader's query cannot run: {primary or exc}",
                                     detail=exc.diag.message_detail) from exc
        columns = [d.name for d in description]
        missing = [k for k in reader.keys if k not in columns]
        if missing:
            raise InvalidReaderQuery(
                f"key column(s) {', '.join(map(repr, missing))} not in the result of the "
                f"reader's query (its columns: {', '.join(columns) or 'none'})")
        types = {d.name: d.type_code for d in description}
        tags = [KEY_TAGS.get(types[k], "") for k in reader.keys]
        if not all(tags) or len(set(columns)) != len(columns):
            return None
        if reader.rows == "tuple":
            if len(columns) != len(writer.columns):
                return None
            select_list: sql.Composable = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            targets = [writer.columns[columns.index(k)] for k in reader.keys]
        else:
            if any(c not in columns for c in writer.columns):
                return None
            select_list = sql.SQL(", ").join(sql.Identifier(c) for c in writer.columns)
            targets = [k for k in reader.keys if k in writer.columns]
        writer.check(conn)
        returned: list[str] | None = None
        if writer.on_conflict is None and len(targets) == len(reader.keys):
            found = dict(conn.execute(
                "select a.attname::text, a.atttypid::int from pg_catalog.pg_attribute a"
                " where a.attrelid = pg_catalog.to_regclass(%s) and a.attnum > 0"
                " and not a.attisdropped", [writer._target.as_string(conn)]).fetchall())
            # varchar(n) drops trailing blanks that do not fit: the value stored could differ
            if all(found.get(t) == types[k] != 1043
                   for t, k in zip(targets, reader.keys, strict=True)):
                returned = targets
        casts = [KEY_CASTS[types[k]] for k in reader.keys]
        return cls(reader, writer, chunk_size, tags, select_list, returned, casts)

    def statement(self, conn: psycopg.Connection[Any], committed: ExecutionContext,
                  commit_args: list[Any] | None) -> tuple[str, Any]:
        """The chunk's statement (as text) and its parameters.

        ``commit_args``: ``commit_chunk``'s step_execution_id, job_id,
        claim_token, expected_seq and lease; None for the page insert alone
        (the first part of a pipelined chunk, :mod:`pgbatch.batch.pipeline`:
        it returns the counts and the new context, and calls no
        ``commit_chunk``). The text is built once for the first chunk and
        once for the others (the same text each time, so psycopg prepares
        it); only the parameters change.
        """
        reader = self.reader
        after = reader._cursor_of(committed)
        entry = committed.get(reader.name)
        read_before = int(entry.get("read", 0)) if isinstance(entry, dict) else 0
        form = (after is None, commit_args is not None)
        text = self._texts.get(form)
        if text is not None:
            # the placeholders' values in the order _compose writes them
            p = Params(reader.params, reader.query)
            for value in (*self._key_values(after), Jsonb(committed), reader.name, read_before,
                          self._kept(),
                          *(self._commit_values(commit_args) if commit_args else ())):
                p.add(value)
            return text, p.values
        query, values = self.compose(after, read_before, committed, commit_args)
        text = self._texts[form] = query.as_string(conn)
        return text, values

    def _kept(self) -> Jsonb:
        """What the reader's context entry keeps besides its cursor: ``{"total": n}``."""
        return Jsonb({} if self.total is None else {"total": self.total})

    def _key_values(self, after: list[Any] | None) -> list[Any]:
        """The cursor's values as sent: integers as ``int8`` (one parameter type whatever
        their size, so one prepared statement)."""
        return [Int8(v) if tag == "int" and not isinstance(v, Expr) else v
                for v, tag in zip(after or (), self.tags, strict=False)]

    @staticmethod
    def _commit_values(commit_args: list[Any]) -> list[Any]:
        """commit_chunk's arguments with the integers sent as ``int8`` (stable parameter
        types: one prepared statement whatever their size)."""
        se, job, token, seq, lease = commit_args
        return [Int8(se), job, token, seq if isinstance(seq, Expr) else Int8(seq), lease]

    def _commit_placeholders(self, p: Params, commit_args: list[Any]) -> list[sql.Composable]:
        """The placeholders of commit_chunk's arguments, cast to its parameters' types."""
        return [sql.SQL("{}::{}").format(p.add(v), sql.SQL(t)) for v, t in zip(
            self._commit_values(commit_args), ("bigint", "uuid", "uuid", "bigint", "interval"),
            strict=True)]

    def _last(self, source: str, names: list[str]) -> sql.Composable:
        """The query of the page's last key (``names`` in ``source``): ``max()`` for one
        key column of a type whose maximum is its last in key order, else the first row
        in descending order."""
        if len(names) == 1 and self.tags[0] in _MAX_TAGS:
            return sql.SQL("select max({k}) as {k} from {src}").format(
                k=sql.Identifier(names[0]), src=sql.Identifier(source))
        return sql.SQL("select {keys} from {src} order by {desc} limit 1").format(
            keys=sql.SQL(", ").join(sql.Identifier(n) for n in names), src=sql.Identifier(source),
            desc=sql.SQL(", ").join(sql.SQL("{} desc").format(sql.Identifier(n)) for n in names))

    def _page(self, p: Params, after: list[Any] | None) -> sql.Composable:
        """The next page after the cursor: the key placeholders cast to the keys' types,
        the chunk size a literal (the same text each chunk, planned once)."""
        reader = self.reader
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in reader.keys)
        where: sql.Composable = sql.SQL("")
        if after is not None:
            where = sql.SQL(" where ({}) > ({})").format(keys, sql.SQL(", ").join(
                sql.SQL("{}::{}").format(p.add(v), sql.SQL(cast)) if cast else p.add(v)
                for v, cast in zip(self._key_values(after), self.casts, strict=True)))
        return sql.SQL("select * from ({}) as _pgbatch_q{} order by {} limit {}").format(
            p.query, where, keys, sql.Literal(self.chunk_size))

    def _tail(self, p: Params, commit_args: list[Any] | None, guard: str,
              read_count: str) -> sql.Composable:
        """The statement's end: ``commit_chunk`` of the new context (a CTE) and the
        result row; without ``commit_args``, the result row alone."""
        result = (" select x.n as pushdown_read, x.nulls as pushdown_nulls,"
                  " x.context as pushdown_context{} from _pgbatch_context x{}")
        if commit_args is None:
            return sql.SQL(result.format("", ""))
        se, job, token, seq, lease = self._commit_placeholders(p, commit_args)
        return sql.SQL(
            ", _pgbatch_commit as materialized (select r.* from (select * from _pgbatch_context"
            " where n > 0" + guard + ") g, lateral pgbatch.commit_chunk({se}, {job}, {token},"
            " {seq}, g.context, read_count => " + read_count + ", write_count => g.n,"
            " lease => {lease}) r)" + result.format(", k.*", " left join _pgbatch_commit k on true")
        ).format(se=se, job=job, token=token, seq=seq, lease=lease)

    def compose(self, after: list[Any] | None, read_before: Any, committed: Any,
                 commit_args: list[Any] | None,
                 p: Params | None = None) -> tuple[sql.Composed, Any]:
        reader, w = self.reader, self.writer
        if p is None:
            p = Params(reader.params, reader.query)
        page = self._page(p, after)
        nulls = sql.SQL(" or ").join(sql.SQL("{} is null").format(sql.Identifier(k))
                                     for k in reader.keys)
        tail = sql.SQL(" " + w.on_conflict) if w.on_conflict else sql.SQL("")
        typed = sql.SQL(", ").join(
            sql.SQL("jsonb_build_object('t', {}::text, 'v', to_jsonb(l.{}))").format(
                sql.Literal(tag), sql.Identifier(k))
            for tag, k in zip(self.tags, reader.keys, strict=True))
        if self.returned_keys is not None:
            return self._returning_statement(p, page, tail, committed, read_before, commit_args)
        base = p.add(committed if isinstance(committed, Expr) else Jsonb(committed))
        name = p.add(reader.name)
        read0 = p.add(read_before)
        kept = p.add(self._kept())
        query = sql.SQL(
            "with _pgbatch_page as materialized ({page}),"
            " _pgbatch_count as materialized (select count(*) as n,"
            " count(*) filter (where {nulls}) as nulls from _pgbatch_page),"
            " _pgbatch_last as ({last}),"
            " _pgbatch_write as (insert into {target} ({columns}) select {select_list}"
            " from _pgbatch_page where (select c.nulls = 0 from _pgbatch_count c){tail}),"
            " _pgbatch_context as materialized (select c.n, c.nulls, {base}::jsonb"
            " || jsonb_build_object({name}::text, jsonb_build_object('after',"
            " jsonb_build_array({typed}), 'read', {read0}::bigint + c.n) || {kept}::jsonb)"
            " as context"
            " from _pgbatch_count c left join _pgbatch_last l on true){tail_}").format(
            page=page, nulls=nulls, last=self._last("_pgbatch_page", reader.keys),
            target=w._target,
            columns=w._column_list, select_list=self.select_list, tail=tail, base=base,
            name=name, typed=typed, read0=read0, kept=kept,
            tail_=self._tail(p, commit_args, " and nulls = 0", "g.n"))
        return query, p.values

    def _returning_statement(self, p: Params, page: sql.Composable, tail: sql.Composable,
                             committed: Any, read_before: Any,
                             commit_args: list[Any] | None) -> tuple[sql.Composed, Any]:
        """The cheaper form: the rows go straight from the page into the table, and the
        counts and the last key come from its ``RETURNING`` (no conflict clause skips a
        row; the key columns land in columns of the same types). A NULL key makes
        ``commit_chunk``'s read count negative: the statement fails whole (PB007);
        without ``commit_args`` the caller sees ``null_keys`` and rolls back."""
        reader, w = self.reader, self.writer
        assert self.returned_keys is not None
        names = [f"_pgbatch_k{i}" for i in range(len(reader.keys))]
        returning = sql.SQL(", ").join(sql.SQL("{} as {}").format(sql.Identifier(t),
                                                                   sql.Identifier(n))
                                       for t, n in zip(self.returned_keys, names, strict=True))
        nulls = sql.SQL(" or ").join(sql.SQL("{} is null").format(sql.Identifier(n))
                                     for n in names)
        typed = sql.SQL(", ").join(
            sql.SQL("jsonb_build_object('t', {}::text, 'v', to_jsonb(l.{}))").format(
                sql.Literal(tag), sql.Identifier(n))
            for tag, n in zip(self.tags, names, strict=True))
        base = p.add(committed if isinstance(committed, Expr) else Jsonb(committed))
        name = p.add(reader.name)
        read0 = p.add(read_before)
        kept = p.add(self._kept())
        query = sql.SQL(
            "with _pgbatch_write as (insert into {target} ({columns}) select {select_list}"
            " from ({page}) as _pgbatch_page{tail} returning {returning}),"
            " _pgbatch_count as materialized (select count(*) as n,"
            " count(*) filter (where {nulls}) as nulls from _pgbatch_write),"
            " _pgbatch_last as ({last}),"
            " _pgbatch_context as materialized (select c.n, c.nulls, {base}::jsonb"
            " || jsonb_build_object({name}::text, jsonb_build_object('after',"
            " jsonb_build_array({typed}), 'read', {read0}::bigint + c.n) || {kept}::jsonb)"
            " as context"
            " from _pgbatch_count c left join _pgbatch_last l on true){tail_}").format(
            target=w._target, columns=w._column_list, select_list=self.select_list, page=page,
            tail=tail, returning=returning, nulls=nulls, last=self._last("_pgbatch_write", names),
            base=base,
            name=name, typed=typed, read0=read0, kept=kept,
            tail_=self._tail(p, commit_args, "", "case when g.nulls = 0 then g.n else -1 end"))
        return query, p.values

    @staticmethod
    def result(row: dict[str, Any]) -> ServerChunkResult:
        """The statement's row as a :class:`ServerChunkResult`."""
        commit = None if row.get("chunk_seq") is None else {
            k: row[k] for k in ("chunk_seq", "applied", "status", "stop_requested",
                                "pause_requested")}
        return ServerChunkResult(int(row["pushdown_read"]), int(row["pushdown_nulls"]),
                                 dict(row["pushdown_context"]), commit)


def server_plan(pool: Any, reader: Any, writer: Any, processor: Any, chunk_size: int,
                committed: ExecutionContext) -> ServerChunk | None:
    """The plan of the chunk statement when the step may run in the server, else None
    (``pool``: the worker's sync pool)."""
    if not is_candidate(reader, writer, processor, getattr(pool, "conninfo", None)):
        return None
    reader._cursor_of(committed)  # InvalidCursor for a checkpoint that does not fit
    with pool.connection() as conn:
        server = ServerChunk.plan(conn, reader, writer, chunk_size)
        if server is not None:
            server.total = reader.total_for(committed, conn)
        return server


def null_key_error(server: ServerChunk) -> InvalidCursor:
    """The error of a NULL key column met by a chunk run in the server."""
    return InvalidCursor(
        f"a key column ({', '.join(server.reader.keys)}) of reader {server.reader.name!r} "
        "is NULL in a row: keyset pagination needs keys that are never NULL (filter them "
        "out in the query, or use another key)")
