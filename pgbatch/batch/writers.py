"""Built-in writers of chunk steps: :class:`TableWriter` writes each chunk into a
table of the same database, in the chunk's own transaction.

The writer is given the connection of the chunk's transaction: its rows
commit together with the step's checkpoint (``commit_chunk``), or not at all,
so every item is written exactly once however often the chunk is retried
after a crash. Rows go in with ``COPY … FROM STDIN`` (the default), with one
``INSERT … SELECT FROM unnest(<one array per column>)`` that the step
executor folds into the chunk's commit statement (``method="unnest"``, the
fastest: the whole chunk, its checkpoint and its fence are one statement and
one round trip), or with one multi-row ``INSERT`` per chunk
(``method="insert"``; use it for a table whose triggers or rules need INSERT,
or to add ``on_conflict``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

from pgbatch._errors import InvalidArgument, InvalidWriterItem, InvalidWriterTarget

#: How a :class:`TableWriter` writes a chunk.
WriteMethod = Literal["copy", "insert", "unnest"]
#: Bind parameters one INSERT statement may carry (PostgreSQL's protocol limit).
MAX_INSERT_PARAMS: Final = 65535

_TARGET_COLUMNS: Final = """
select a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attndims > 0
       or t.typcategory = 'A'
  from pg_catalog.pg_type t, pg_catalog.pg_attribute a
 where t.oid = a.atttypid
   and a.attrelid = pg_catalog.to_regclass(%s) and a.attnum > 0 and not a.attisdropped
 order by a.attnum"""


#: Value types whose ``str()`` is their PostgreSQL input form, unquoted in an array literal.
_BARE: Final = frozenset({int, Decimal, float, bool})


def _array_param(values: tuple[Any, ...]) -> Any:
    """One column of a chunk as the parameter of ``unnest``: the array's text form
    when every value is of one plain type (numbers, bools, strings; built in C
    by ``str.join``), else the list (psycopg adapts it, value by value)."""
    kinds = set(map(type, values))
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind in _BARE:
            return "{" + ",".join(map(str, values)) + "}"
        if kind is str:
            return '{"' + '","'.join([v.replace("\\", "\\\\").replace('"', '\\"')
                                      for v in values]) + '"}'
    return list(values)


def _table_identifier(table: str) -> sql.Identifier:
    parts = table.split(".")
    if not table or len(parts) > 2 or any(not p for p in parts):
        raise InvalidArgument(f"table must be 'name' or 'schema.name', got {table!r}")
    return sql.Identifier(*parts)


class TableWriter:
    """Writes items into ``table`` (``"name"`` or ``"schema.name"``, as written,
    case-sensitive) as rows of ``columns``.

    An item is a mapping (the value of each column by name; other keys are
    ignored) or a sequence of the values in ``columns`` order (a tuple, a list).
    ``method``: ``"copy"`` (default), ``"unnest"`` (the fastest; not for array
    columns, which unnest would flatten: ``InvalidWriterTarget``) or
    ``"insert"``; ``on_conflict``: an ``ON CONFLICT`` clause for ``"insert"``
    or ``"unnest"``, e.g. ``"on conflict do nothing"``.

    Implements :class:`~pgbatch.batch.items.ItemWriter`, and is also a
    ``Writer`` of today's ``ChunkStep`` (``writer(conn, items)``). The first
    write checks the table and its columns on the chunk's connection:
    ``InvalidWriterTarget`` when the table or a column does not exist; an item
    that does not fit is ``InvalidWriterItem``. Either fails the chunk, and the
    chunk's transaction writes nothing.
    """

    def __init__(self, table: str, columns: Sequence[str], *, method: WriteMethod = "copy",
                 on_conflict: str | None = None) -> None:
        if isinstance(columns, str):
            raise InvalidArgument(f"columns must be a sequence of column names, got {columns!r}")
        cols = list(columns)
        if not cols or any(not isinstance(c, str) or not c for c in cols) or \
                len(set(cols)) != len(cols):
            raise InvalidArgument(
                f"columns must name one or more distinct columns, got {columns!r}")
        if method not in ("copy", "insert", "unnest"):
            raise InvalidArgument(
                f"method must be 'copy', 'insert' or 'unnest', got {method!r}")
        if on_conflict is not None and method == "copy":
            raise InvalidArgument("on_conflict needs method='insert' or 'unnest' "
                                  "(COPY has no ON CONFLICT)")
        self.table = table
        self.columns = cols
        self.method: WriteMethod = method
        self.on_conflict = on_conflict
        self._target = _table_identifier(table)
        self._column_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        self._checked = False
        self._types: list[str] = []
        self._unnest: sql.Composed | None = None

    def __repr__(self) -> str:
        """What the writer writes, stably (a job definition's fingerprint may use it)."""
        return (f"TableWriter(table={self.table!r}, columns={self.columns!r},"
                f" method={self.method!r})")

    def write(self, conn: psycopg.Connection[Any], items: Sequence[Any]) -> None:
        """Write ``items`` on ``conn`` (the chunk's transaction commits them)."""
        rows = self._rows(items)
        if not self._checked:
            self.check(conn)
        if not rows:
            return
        if self.method == "copy":
            self._copy(conn, rows)
        elif self.method == "unnest":
            query, params = self._unnest_statement(rows)
            conn.execute(query, params)
        else:
            self._insert(conn, rows)

    __call__ = write

    def chunk_statement(self, conn: psycopg.Connection[Any], items: Sequence[Any]
                        ) -> tuple[sql.Composed, list[Any]] | None:
        """The chunk's write as one statement to run with the chunk's commit, or None.

        With ``method="unnest"``: ``(insert … select from unnest(…), params)``;
        the step executor runs it as a data-modifying ``WITH`` of the
        ``commit_chunk`` call, so the chunk is one statement. Other methods:
        None (the executor calls :meth:`write` in the chunk's transaction).
        """
        if self.method != "unnest":
            return None
        rows = self._rows(items)
        if not self._checked:
            self.check(conn)
        return self._unnest_statement(rows)

    def _unnest_statement(self, rows: Sequence[Sequence[Any]]) -> tuple[sql.Composed, list[Any]]:
        if self._unnest is None:
            arrays = sql.SQL(", ").join(sql.SQL("{}::{}[]").format(sql.Placeholder(),
                                                                   sql.SQL(t))
                                        for t in self._types)
            tail = sql.SQL(" " + self.on_conflict) if self.on_conflict else sql.SQL("")
            self._unnest = sql.SQL("insert into {} ({}) select * from unnest({}){}").format(
                self._target, self._column_list, arrays, tail)
        columns = [_array_param(c) for c in zip(*rows, strict=True)] if rows else \
            [[] for _ in self.columns]
        return self._unnest, columns
    def check(self, conn: psycopg.Connection[Any]) -> None:
        """Check that the table and every column exist; InvalidWriterTarget if not."""
        name = self._target.as_string(conn)
        described = conn.execute(_TARGET_COLUMNS, [name]).fetchall()
        found = [r[0] for r in described]
        if not found:
            exists = conn.execute("select pg_catalog.to_regclass(%s) is not null",
                                  [name]).fetchone()
            if not exists or not exists[0]:
                raise InvalidWriterTarget(f"table {self.table!r} does not exist (or is not "
                                          "visible on the search path of the writer's role)")
        unknown = [c for c in self.columns if c not in found]
        if unknown:
            raise InvalidWriterTarget(
                f"table {self.table!r} has no column(s) {', '.join(map(repr, unknown))} "
                f"(its columns: {', '.join(found) or 'none'})")
        types = {r[0]: (str(r[1]), bool(r[2])) for r in described}
        arrays = [c for c in self.columns if types[c][1]]
        if self.method == "unnest" and arrays:
            raise InvalidWriterTarget(
                f"table {self.table!r}: method='unnest' cannot write array column(s) "
                f"{', '.join(map(repr, arrays))} (unnest flattens arrays): use 'copy'")
        self._types = [types[c][0] for c in self.columns]
        self._checked = True

    def _rows(self, items: Sequence[Any]) -> list[Sequence[Any]]:
        """The items as rows in ``columns`` order (a fast path for plain tuples and dicts)."""
        width = len(self.columns)
        cols = self.columns
        out: list[Sequence[Any]] = []
        append = out.append
        for index, item in enumerate(items):
            kind = type(item)
            if kind is tuple and len(item) == width:
                append(item)
            elif kind is dict and all(c in item for c in cols):
                append([item[c] for c in cols])
            else:
                append(self._row(index, item))
        return out

    def _row(self, index: int, item: Any) -> Sequence[Any]:
        if isinstance(item, Mapping):
            missing = [c for c in self.columns if c not in item]
            if missing:
                raise InvalidWriterItem(f"item {index} of the chunk has no value for column(s) "
                                        f"{', '.join(map(repr, missing))}: {item!r}"[:500])
            return [item[c] for c in self.columns]
        if isinstance(item, Sequence) and not isinstance(item, str | bytes):
            if len(item) != len(self.columns):
                raise InvalidWriterItem(
                    f"item {index} of the chunk has {len(item)} values for "
                    f"{len(self.columns)} columns ({', '.join(self.columns)}): {item!r}"[:500])
            return item
        raise InvalidWriterItem(f"item {index} of the chunk is a {type(item).__name__}: "
                                "a table writer takes mappings or tuples")

    def _copy(self, conn: psycopg.Connection[Any], rows: Sequence[Sequence[Any]]) -> None:
        statement = sql.SQL("copy {} ({}) from stdin").format(self._target, self._column_list)
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def _insert(self, conn: psycopg.Connection[Any], rows: Sequence[Sequence[Any]]) -> None:
        per_statement = max(1, MAX_INSERT_PARAMS // len(self.columns))
        one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(self.columns)))
        tail = sql.SQL(" " + self.on_conflict) if self.on_conflict else sql.SQL("")
        with conn.cursor() as cur:
            for start in range(0, len(rows), per_statement):
                batch = rows[start:start + per_statement]
                statement = sql.SQL("insert into {} ({}) values {}{}").format(
                    self._target, self._column_list, sql.SQL(", ").join([one] * len(batch)), tail)
                cur.execute(statement, [v for row in batch for v in row])
