"""Built-in writers of chunk steps: :class:`TableWriter` writes each chunk into a
table of the same database, in the chunk's own transaction.

The writer is given the connection of the chunk's transaction: its rows
commit together with the step's checkpoint (``commit_chunk``), or not at all,
so every item is written exactly once however often the chunk is retried
after a crash. Rows go in with ``COPY … FROM STDIN`` (the default, fastest)
or one multi-row ``INSERT`` per chunk (``method="insert"``; use it for a
table whose triggers or rules need INSERT, or to add ``on_conflict``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

from pgbatch._errors import InvalidArgument, InvalidWriterItem, InvalidWriterTarget

#: How a :class:`TableWriter` writes a chunk.
WriteMethod = Literal["copy", "insert"]
#: Bind parameters one INSERT statement may carry (PostgreSQL's protocol limit).
MAX_INSERT_PARAMS: Final = 65535

_TARGET_COLUMNS: Final = """
select a.attname::text
  from pg_catalog.pg_attribute a
 where a.attrelid = pg_catalog.to_regclass(%s) and a.attnum > 0 and not a.attisdropped
 order by a.attnum"""


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
    ``method``: ``"copy"`` (default) or ``"insert"``; ``on_conflict``: an
    ``ON CONFLICT`` clause for ``"insert"``, e.g. ``"on conflict do nothing"``.

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
        if method not in ("copy", "insert"):
            raise InvalidArgument(f"method must be 'copy' or 'insert', got {method!r}")
        if on_conflict is not None and method != "insert":
            raise InvalidArgument("on_conflict needs method='insert' (COPY has no ON CONFLICT)")
        self.table = table
        self.columns = cols
        self.method: WriteMethod = method
        self.on_conflict = on_conflict
        self._target = _table_identifier(table)
        self._column_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        self._checked = False

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
        else:
            self._insert(conn, rows)

    __call__ = write

    def check(self, conn: psycopg.Connection[Any]) -> None:
        """Check that the table and every column exist; InvalidWriterTarget if not."""
        name = self._target.as_string(conn)
        found = [r[0] for r in conn.execute(_TARGET_COLUMNS, [name]).fetchall()]
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
