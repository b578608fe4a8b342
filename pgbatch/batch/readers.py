"""Built-in readers of chunk steps: :class:`SqlReader`, a SQL query read in
pages by keyset pagination, with its cursor kept in the step's ExecutionContext.

The reader reads on a connection of its own, opened from a DSN in
``open(context)`` and closed in ``close()`` (autocommit: each page is one
short query, so no transaction stays open between chunks and the chunk
transaction holds no read locks of the reader). It does not share the chunk's
connection: :meth:`~pgbatch.batch.items.ItemReader.read` is called outside the
chunk transaction and is given no connection, and reading ahead in pages on
the chunk's connection would interleave with the writer's statements. Keyset
pagination makes the pages independent of each other: each page is
``… where (keys) > (last key) order by keys limit page_size``, so rows
inserted or deleted between pages never shift the reader (no OFFSET), and a
restart reads on after the last key of the last committed chunk.

Pages are read ahead: as soon as a page arrives, the query for the next one
(its start key is the last key of the page just fetched) goes out on the
reader's connection from a thread of the reader, so the next page is ready
while the chunk's items are processed, written and committed (``prefetch``;
the read-ahead only ever overlaps the step's own work on other connections,
never another use of the reader's connection).

The cursor is the key of the last item handed out (not the last one fetched:
items of a page not yet read are read again after a restart). ``update``
writes it into the context right before each chunk commit, so the checkpoint
and the chunk's writes commit together; ``open`` reads it back. Key values
are stored typed, ``{"t": type, "v": value}`` (types ``int``, ``str``,
``bool``, ``float``, ``decimal``, ``date``, ``datetime`` (with a time zone),
``timestamp`` (without), ``uuid``), so they read back as the same Python
values and compare in SQL as the same column values.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal
from uuid import UUID

import psycopg
from psycopg import sql

from pgbatch._errors import InvalidArgument, InvalidCursor, InvalidReaderQuery
from pgbatch.batch.items import ExecutionContext

#: Rows a :class:`SqlReader` fetches per query unless told otherwise.
DEFAULT_PAGE_SIZE: Final = 1000
#: The most rows one page may hold.
MAX_PAGE_SIZE: Final = 100_000

#: What the reader hands out: a dict (column -> value) or a tuple in column order.
RowShape = Literal["dict", "tuple"]
#: One key value in the checkpoint: ``{"t": type, "v": value}``.
TypedValue = dict[str, Any]


def encode_key_value(column: str, value: Any) -> TypedValue:
    """``value`` of key column ``column`` as a typed JSON value; InvalidCursor if it has none."""
    if value is None:
        raise InvalidCursor(
            f"key column {column!r} is NULL in a row: keyset pagination needs keys that are "
            "never NULL (filter them out in the query, or use another key)")
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, int):
        return {"t": "int", "v": value}
    if isinstance(value, str):
        return {"t": "str", "v": value}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidCursor(f"key column {column!r} holds {value!r}, which has no JSON form")
        return {"t": "float", "v": repr(value)}
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidCursor(f"key column {column!r} holds {value}, which has no JSON form")
        return {"t": "decimal", "v": str(value)}
    if isinstance(value, datetime):
        return {"t": "datetime" if value.tzinfo is not None else "timestamp",
                "v": value.isoformat()}
    if isinstance(value, date):
        return {"t": "date", "v": value.isoformat()}
    if isinstance(value, UUID):
        return {"t": "uuid", "v": str(value)}
    raise InvalidCursor(
        f"key column {column!r} holds a {type(value).__name__}, which cannot be kept in the "
        "step's checkpoint: use key columns of type int, text, bool, float, numeric, date, "
        "timestamp, timestamptz or uuid")


_DECODERS: Final[dict[str, Callable[[Any], Any]]] = {
    "bool": lambda v: v if isinstance(v, bool) else _bad(v),
    "int": lambda v: v if isinstance(v, int) and not isinstance(v, bool) else _bad(v),
    "str": lambda v: v if isinstance(v, str) else _bad(v),
    "float": float,
    "decimal": Decimal,
    "datetime": lambda v: _aware(datetime.fromisoformat(v)),
    "timestamp": lambda v: _naive(datetime.fromisoformat(v)),
    "date": date.fromisoformat,
    "uuid": UUID,
}


def _bad(value: Any) -> Any:
    raise ValueError(f"unexpected value {value!r}")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else _bad(value)


def _naive(value: datetime) -> datetime:
    return value if value.tzinfo is None else _bad(value)


def decode_key_value(column: str, typed: Any) -> Any:
    """The Python value of a typed key value (see :func:`encode_key_value`)."""
    if not isinstance(typed, dict) or set(typed) != {"t", "v"} or typed["t"] not in _DECODERS:
        raise InvalidCursor(f"the checkpoint's value of key column {column!r} is not a typed "
                            f"key value like {{\"t\": \"int\", \"v\": 42}}: {typed!r}")
    try:
        return _DECODERS[typed["t"]](typed["v"])
    except (ValueError, TypeError, ArithmeticError):
        raise InvalidCursor(f"the checkpoint's value of key column {column!r} does not read "
                            f"as a {typed['t']}: {typed['v']!r}") from None


class SqlReader:
    """Reads the rows of ``query`` in pages of ``page_size``, in the order of ``key``.

    ``conninfo``: the DSN the reader connects to (its own connection, see the
    module's docstring). ``query``: a SELECT (text or ``psycopg.sql``
    Composable; a literal ``%`` is written ``%%``), run as a subquery, with
    ``params`` for its own placeholders (a sequence for ``%s``, a mapping for
    ``%(name)s``). ``key``: the column (or columns) that order the rows
    uniquely and are never NULL, e.g. the primary key. ``rows``: items are
    dicts (``"dict"``, column -> value) or tuples in the query's column order
    (``"tuple"``, the cheaper). ``name``: the key of the cursor in the step's
    ExecutionContext (give two readers of one step different names).
    ``prefetch``: read the next page ahead (see the module's docstring).
    ``count_total``: count the query's rows once, at the step's first open (one
    extra ``select count(*)`` at step start), and keep the count as ``total``
    in the reader's context entry, so a restart keeps it and the dashboard
    shows the step's progress (read of total); rows added or removed after
    the count do not change it.
    ``same_database``: ``conninfo`` is the worker's own database; with a
    :class:`~pgbatch.batch.writers.TableWriter` and no processor the step
    then runs in the server, one statement per chunk (see
    :mod:`pgbatch.batch.pushdown`; a DSN equal to the worker pool's says the
    same).

    Implements :class:`~pgbatch.batch.items.ItemReader` and
    :class:`~pgbatch.batch.items.ItemStream`. Errors: ``InvalidReaderQuery``
    (the query fails, a key column is missing from its result),
    ``InvalidCursor`` (a NULL or untyped key, a checkpoint that does not fit).
    """

    def __init__(self, conninfo: str, query: str | sql.Composable, key: str | Sequence[str], *,
                 params: Sequence[Any] | Mapping[str, Any] | None = None,
                 page_size: int = DEFAULT_PAGE_SIZE, rows: RowShape = "dict",
                 name: str = "sql_reader", connect_kwargs: Mapping[str, Any] | None = None,
                 prefetch: bool = True, same_database: bool = False,
                 count_total: bool = False) -> None:
        keys = [key] if isinstance(key, str) else list(key)
        if not keys or any(not isinstance(k, str) or not k for k in keys) or \
                len(set(keys)) != len(keys):
            raise InvalidArgument(f"key must name one or more distinct columns, got {key!r}")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or \
                not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
        if rows not in ("dict", "tuple"):
            raise InvalidArgument(f"rows must be 'dict' or 'tuple', got {rows!r}")
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"name must be a non-empty string, got {name!r}")
        self.conninfo = conninfo
        self.query = sql.SQL(query) if isinstance(query, str) else query
        self.keys = keys
        self.params = params
        self.page_size = page_size
        self.rows: RowShape = rows
        self.name = name
        self.connect_kwargs = dict(connect_kwargs or {})
        self.prefetch = bool(prefetch)
        self.same_database = bool(same_database)
        self.count_total = bool(count_total)
        self.total: int | None = None  # the count of count_total, once known
        self._binary = False
        self._ahead: ThreadPoolExecutor | None = None
        self._pending: Future[list[tuple[Any, ...]]] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._columns: list[str] = []
        self._key_index: list[int] = []
        self._after: list[Any] | None = None     # key of the last item handed out
        self._last: tuple[Any, ...] | None = None  # that item, while its key is not taken
        self._fetched: list[Any] | None = None   # key of the last row fetched
        self._exhausted = False
        self._read = 0

    def __repr__(self) -> str:
        """What the reader reads, stably (a job definition's fingerprint may use it; no DSN)."""
        return (f"SqlReader(name={self.name!r}, key={self.keys!r}, page_size={self.page_size},"
                f" rows={self.rows!r})")

    # -- ItemStream -----------------------------------------------------------------
    def open(self, context: ExecutionContext) -> None:
        """Connect, check the query and its key columns, and take the cursor from ``context``."""
        self.close()
        after = self._cursor_of(context)
        self._conn = psycopg.connect(self.conninfo, autocommit=True, **self.connect_kwargs)
        try:
            self._columns = self._describe()
        except BaseException:
            self.close()
            raise
        missing = [k for k in self.keys if k not in self._columns]
        if missing:
            self.close()
            raise InvalidReaderQuery(
                f"key column(s) {', '.join(map(repr, missing))} not in the result of the "
                f"reader's query (its columns: {', '.join(self._columns) or 'none'})")
        self._key_index = [self._columns.index(k) for k in self.keys]
        self._after = self._fetched = after
        entry = context.get(self.name)
        self._read = int(entry.get("read", 0)) if isinstance(entry, dict) else 0
        try:
            self.total = self.total_for(context, self._conn_or_fail())
        except BaseException:
            self.close()
            raise

    def total_for(self, context: ExecutionContext, conn: psycopg.Connection[Any]) -> int | None:
        """The input's row count: the one the context entry keeps, else (``count_total``)
        ``select count(*)`` of the query on ``conn``; None when not counted."""
        entry = context.get(self.name)
        kept = entry.get("total") if isinstance(entry, dict) else None
        if isinstance(kept, int) and not isinstance(kept, bool):
            return kept
        if not self.count_total:
            return None
        count = sql.SQL("select count(*) from ({}) as _pgbatch_q").format(self.query)
        try:
            row = conn.execute(count, self.params).fetchone()
        except psycopg.Error as exc:
            primary = exc.diag.message_primary if exc.sqlstate else None
            raise InvalidReaderQuery(f"the reader's query cannot be counted: {primary or exc}",
                                     detail=exc.diag.message_detail) from exc
        return int(row[0]) if row is not None else 0

    def update(self, context: ExecutionContext) -> None:
        """Write the cursor (the key of the last item read) into ``context``."""
        self._settle()
        if self._after is None:
            context.pop(self.name, None)
            return
        context[self.name] = {
            "after": [encode_key_value(c, v) for c, v in zip(self.keys, self._after, strict=True)],
            "read": self._read,
            **({} if self.total is None else {"total": self.total}),
        }

    def close(self) -> None:
        """Close the reader's connection; the reader can be opened again."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(Exception):  # a read-ahead nobody will use
                pending.result()
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.shutdown(wait=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._buffer.clear()
        self._last = None
        self._exhausted = False

    # -- ItemReader -----------------------------------------------------------------
    def read(self) -> Any:
        """The next row, or ``None`` after the last one."""
        buffer = self._buffer
        if not buffer:
            if self._pending is None and self._exhausted:
                return None
            self._next_page()
            if not buffer:
                return None
        row = buffer.popleft()
        self._last = row
        self._read += 1
        return row if self.rows == "tuple" else dict(zip(self._columns, row, strict=True))

    @property
    def cursor(self) -> list[Any] | None:
        """The key of the last item read (None before the first)."""
        self._settle()
        return None if self._after is None else list(self._after)

    def _settle(self) -> None:
        """The key of the last row handed out becomes the cursor."""
        if self._last is not None:
            self._after = [self._last[i] for i in self._key_index]
            self._last = None

    # -- internals --------------------------------------------------------------------
    def _cursor_of(self, context: ExecutionContext) -> list[Any] | None:
        entry = context.get(self.name)
        if entry is None:
            return None
        after = entry.get("after") if isinstance(entry, dict) else None
        if not isinstance(after, list) or len(after) != len(self.keys):
            raise InvalidCursor(
                f"the checkpoint of reader {self.name!r} does not fit its key "
                f"({', '.join(self.keys)}): {entry!r}; was the step's reader changed?")
        return [decode_key_value(c, v) for c, v in zip(self.keys, after, strict=True)]

    def _check_keys(self, page: list[tuple[Any, ...]]) -> None:
        """InvalidCursor for a NULL key in the page, or a key type without a JSON form."""
        for i, column in zip(self._key_index, self.keys, strict=True):
            if any(row[i] is None for row in page):
                encode_key_value(column, None)  # raises
            encode_key_value(column, page[-1][i])  # the type is the column's: one row tells

    def _conn_or_fail(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError(f"reader {self.name!r} is not open: call open(context) first")
        return self._conn

    def _describe(self) -> list[str]:
        probe = sql.SQL("select * from ({}) as _pgbatch_q limit 0").format(self.query)
        try:
            cur = self._conn_or_fail().execute(probe, self.params)
        except psycopg.Error as exc:
            primary = exc.diag.message_primary if exc.sqlstate else None
            raise InvalidReaderQuery(f"the reader's query cannot run: {primary or exc}",
                                     detail=exc.diag.message_detail) from exc
        description = cur.description or ()
        adapters = self._conn_or_fail().adapters
        # binary results when psycopg loads every column's type from binary (the same
        # Python values, less work on both sides); else text, which loads any type
        self._binary = bool(description) and all(
            adapters.get_loader(d.type_code, psycopg.pq.Format.BINARY) is not None
            for d in description)
        return [d.name for d in description]

    def _next_page(self) -> None:
        """Take the page read ahead (or read one), and send the query for the next one."""
        pending, self._pending = self._pending, None
        page = pending.result() if pending is not None else self._query_page()
        self._buffer.extend(page)
        if self.prefetch and not self._exhausted:
            if self._ahead is None:
                self._ahead = ThreadPoolExecutor(1, thread_name_prefix=f"reader-{self.name}")
            self._pending = self._ahead.submit(self._query_page)

    def _query_page(self) -> list[tuple[Any, ...]]:
        """The page after the last key fetched (at most one runs at a time)."""
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.keys)
        named = isinstance(self.params, Mapping)
        extra: list[Any] = []
        extra_named: dict[str, Any] = {}

        def placeholder(value: Any, i: int) -> sql.Composable:
            if named:
                extra_named[f"_pgbatch_{i}"] = value
                return sql.Placeholder(f"_pgbatch_{i}")
            extra.append(value)
            return sql.Placeholder()

        where: sql.Composable = sql.SQL("")
        if self._fetched is not None:
            after = sql.SQL(", ").join(placeholder(v, i) for i, v in enumerate(self._fetched))
            where = sql.SQL(" where ({}) > ({})").format(keys, after)
        limit = placeholder(self.page_size, len(self.keys))
        query = sql.SQL("select * from ({}) as _pgbatch_q{} order by {} limit {}").format(
            self.query, where, keys, limit)
        params: Sequence[Any] | Mapping[str, Any]
        if named:
            assert isinstance(self.params, Mapping)
            params = {**self.params, **extra_named}
        else:
            params = [*(self.params or ()), *extra]
        page = self._conn_or_fail().execute(query, params, binary=self._binary).fetchall()
        if page:
            self._check_keys(page)
            last = page[-1]
            self._fetched = [last[i] for i in self._key_index]
        if len(page) < self.page_size:
            self._exhausted = True
        return page
