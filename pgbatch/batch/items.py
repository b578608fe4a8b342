"""The protocols of a chunk step's parts: reader, processor, writer, and the
stream callbacks that keep a cursor in the step's ExecutionContext.

A chunk step reads items one at a time until the reader returns ``None``,
passes each through the processor (``None`` from a processor filters the item
out), and hands each chunk of at most ``chunk_size`` items to the writer, on
the connection of the chunk's transaction. That transaction also commits the
step's ExecutionContext, the counters and the chunk sequence, so a writer that
writes to the same database writes each item exactly once.

Readers and writers that implement :class:`ItemStream` get ``open(context)``
before the first read (``context`` is the step's ExecutionContext as committed
with the last chunk: empty on a first start, the checkpoint on a restart or a
recovery), ``update(context)`` right before each chunk commit (write the
cursor into it; it must stay JSON-serialisable), and ``close()`` when the step
ends, whatever the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import psycopg

T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)
In_contra = TypeVar("In_contra", contravariant=True)
Out_co = TypeVar("Out_co", covariant=True)

#: A step's ExecutionContext: a JSON object committed with every chunk.
ExecutionContext = dict[str, Any]


@runtime_checkable
class ItemStream(Protocol):
    """Optional callbacks of a reader or a writer that keeps state across chunks."""

    def open(self, context: ExecutionContext) -> None:
        """Called once before the step's first read, with the committed context."""

    def update(self, context: ExecutionContext) -> None:
        """Called before each chunk commit: store the cursor in ``context``."""

    def close(self) -> None:
        """Called once when the step ends (completed, failed, stopped or paused)."""


class ItemReader(Protocol[T_co]):
    """Reads one item at a time; ``None`` means there are no more."""

    def read(self) -> T_co | None:
        """The next item, or ``None`` at the end of the input."""


class ItemProcessor(Protocol[In_contra, Out_co]):
    """Transforms one item; returning ``None`` filters the item out."""

    def __call__(self, item: In_contra) -> Out_co | None:
        """The item to write, or ``None`` to skip it (counted as filtered)."""


class ItemWriter(Protocol[T_contra]):
    """Writes one chunk of items on the chunk transaction's connection."""

    def write(self, conn: psycopg.Connection[Any], items: Sequence[T_contra]) -> None:
        """Write ``items``; the chunk's commit commits them with the checkpoint."""
