"""The forms a chunk step's reader and writer may take, brought to the
protocols of :mod:`pgbatch.batch.items`.

- An object with ``read()`` / ``write(conn, items)`` (optionally
  ``open``/``update``/``close``, an ``ItemStream``): used as it is.
- A class, or a factory (a callable taking no argument), returning such an object: called
  each time the step is opened, so two executions never share one.
- The plain callables of the first API: ``read(start)`` yields the items after
  the first ``start`` (the checkpoint keeps ``{"read": <items committed>}``),
  ``write(conn, items)`` writes a chunk.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg

from pgbatch.batch.items import ExecutionContext, ItemReader, ItemStream, ItemWriter


def _positional_arity(fn: Callable[..., Any]) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               and p.default is p.empty)


class CallableReader:
    """``read(start)`` as an ItemReader and ItemStream (cursor: ``"read"``)."""

    def __init__(self, fn: Callable[[int], Iterable[Any]]) -> None:
        self._fn = fn
        self._start = 0
        self._taken = 0
        self._it: Iterator[Any] | None = None

    def open(self, context: ExecutionContext) -> None:
        """Start after the committed count."""
        self._start = int(context.get("read", 0))
        self._taken = 0
        self._it = iter(self._fn(self._start))

    def read(self) -> Any:
        """The next item, or None at the end."""
        assert self._it is not None, "open() first"
        try:
            item = next(self._it)
        except StopIteration:
            return None
        self._taken += 1
        return item

    def update(self, context: ExecutionContext) -> None:
        """Store the count of items read."""
        context["read"] = self._start + self._taken

    def close(self) -> None:
        """Drop the iterator."""
        self._it = None


class CallableWriter:
    """``write(conn, items)`` as an ItemWriter."""

    def __init__(self, fn: Callable[[psycopg.Connection[Any], Sequence[Any]], None]) -> None:
        self._fn = fn

    def write(self, conn: psycopg.Connection[Any], items: Sequence[Any]) -> None:
        """Write one chunk."""
        self._fn(conn, items)


def make_reader(spec: Any) -> ItemReader[Any]:
    """The ItemReader for one opening of a step (see the module docstring)."""
    if inspect.isclass(spec):
        return make_reader(spec())
    if hasattr(spec, "read") and not inspect.isroutine(spec):
        return spec  # type: ignore[no-any-return]
    if _positional_arity(spec) == 0:
        return make_reader(spec())
    return CallableReader(spec)


def make_writer(spec: Any) -> ItemWriter[Any]:
    """The ItemWriter for one opening of a step (see the module docstring)."""
    if inspect.isclass(spec):
        return make_writer(spec())
    if hasattr(spec, "write") and not inspect.isroutine(spec):
        return spec  # type: ignore[no-any-return]
    if _positional_arity(spec) == 0:
        return make_writer(spec())
    return CallableWriter(spec)


def is_stream(obj: object) -> bool:
    """Whether ``obj`` implements the ItemStream callbacks."""
    return isinstance(obj, ItemStream)
