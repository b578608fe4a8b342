"""Job and step definitions of the batch engine, and their registration."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

#: A chunk step's reader: given the number of items already committed (the
#: checkpoint), the items that follow, in order.
Reader = Callable[[int], Iterable[Any]]
#: A chunk step's writer: writes one chunk's items on the connection of the
#: chunk's transaction, which commits them together with the checkpoint.
Writer = Callable[[psycopg.Connection[Any], Sequence[Any]], None]


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


@dataclass(frozen=True)
class TaskletStep:
    """A step that runs ``fn()`` once; it completes when ``fn`` returns."""

    name: str
    fn: Callable[[], None]
    start_limit: int | None = None
    allow_start_if_complete: bool = False

    def definition(self) -> dict[str, Any]:
        """The step's entry in ``register_job``'s definition."""
        out: dict[str, Any] = {"name": self.name, "kind": "tasklet"}
        return _options(out, self.start_limit, self.allow_start_if_complete)


@dataclass(frozen=True)
class ChunkStep:
    """A step that reads items, writes them ``chunk_size`` at a time, and
    checkpoints after each chunk in the chunk's own transaction. A restart or
    a recovery reads on from the last committed chunk."""

    name: str
    reader: Reader
    writer: Writer
    chunk_size: int = 100
    start_limit: int | None = None
    allow_start_if_complete: bool = False

    def definition(self) -> dict[str, Any]:
        """The step's entry in ``register_job``'s definition."""
        out: dict[str, Any] = {"name": self.name, "kind": "chunk", "reader": _qualname(self.reader),
                               "writer": _qualname(self.writer), "chunk_size": self.chunk_size}
        return _options(out, self.start_limit, self.allow_start_if_complete)


Step = TaskletStep | ChunkStep


def _options(out: dict[str, Any], start_limit: int | None, allow: bool) -> dict[str, Any]:
    if start_limit is not None:
        out["start_limit"] = start_limit
    if allow:
        out["allow_start_if_complete"] = True
    return out


@dataclass(frozen=True)
class Job:
    """A named job: its steps in order, and its options (see docs/batch.md)."""

    name: str
    steps: Sequence[Step]
    version: str | None = None
    restartable: bool = True
    queue: str = "batch"
    by_name: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {s.name: s for s in self.steps})

    def definition(self) -> dict[str, Any]:
        """The definition ``register_job`` takes."""
        out: dict[str, Any] = {"steps": [s.definition() for s in self.steps],
                               "restartable": self.restartable, "queue": self.queue}
        if self.version is not None:
            out["version"] = self.version
        return out

    def step_after(self, name: str) -> str | None:
        """The name of the step after ``name``, or None for the last."""
        names = [s.name for s in self.steps]
        i = names.index(name)
        return names[i + 1] if i + 1 < len(names) else None


def register_jobs(conn: psycopg.Connection[Any], jobs: Iterable[Job]) -> dict[str, str]:
    """Register each job's definition (``pgbatch.register_job``); return name -> fingerprint."""
    out: dict[str, str] = {}
    for job in jobs:
        row = conn.execute("select pgbatch.register_job(%s, %s)",
                           [job.name, Jsonb(job.definition())]).fetchone()
        assert row is not None
        out[job.name] = str(row[0])
    return out
