"""Job and step definitions of the batch engine, and their registration.

A :class:`Job` is a name, an ordered list of steps and its options; a step is
a :class:`TaskletStep` (one callable), a :class:`ChunkStep` (reader, optional
processor, writer, ``chunk_size``) or a :class:`Gate` (an approval gate).
Readers and writers follow the protocols of ``pgbatch.batch.items``; see
:mod:`pgbatch.batch.streams` for the other forms they may take (a factory, or
the plain callables of the first API).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from pgbatch._errors import InvalidJobDefinition
from pgbatch.batch.policies import Fail, RecoveryPolicy, ResumeForward

#: What a worker that shuts down does with a running execution of the job.
OnShutdown = Literal["handoff", "stop", "pause"]

#: A tasklet: called once with the step's context (or with no argument).
Tasklet = Callable[..., None]


def qualified_name(obj: Any) -> str:
    """``module.qualname`` of a function or class, or of an object's class."""
    target = obj if inspect.isroutine(obj) or inspect.isclass(obj) else type(obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidJobDefinition(f"a {kind} needs a non-empty name, got {name!r}")


def _check_limit(step: str, start_limit: object) -> None:
    if start_limit is not None and (isinstance(start_limit, bool)
                                    or not isinstance(start_limit, int) or start_limit < 1):
        raise InvalidJobDefinition(f"step {step!r}: start_limit must be a positive integer, "
                                   f"got {start_limit!r}")


@dataclass(frozen=True)
class TaskletStep:
    """A step that runs ``fn`` once; it completes when ``fn`` returns.

    ``fn`` takes the step's :class:`~pgbatch.batch.context.StepContext` (or no
    argument): ``ctx.stop_requested()`` says whether an operator, the worker's
    shutdown or ``ctx.request_stop()`` asked it to stop; a tasklet that called
    ``ctx.request_stop()`` ends STOPPED.
    """

    name: str
    fn: Tasklet
    start_limit: int | None = None
    allow_start_if_complete: bool = False

    def __post_init__(self) -> None:
        _check_name("step", self.name)
        if not callable(self.fn):
            raise InvalidJobDefinition(f"step {self.name!r}: fn must be callable")
        _check_limit(self.name, self.start_limit)

    def definition(self) -> dict[str, Any]:
        """The step's entry in ``register_job``'s definition."""
        out: dict[str, Any] = {"name": self.name, "kind": "tasklet"}
        return _options(out, self.start_limit, self.allow_start_if_complete)


@dataclass(frozen=True)
class ChunkStep:
    """A step that reads items, processes them, writes them ``chunk_size`` at a
    time, and checkpoints after each chunk in the chunk's own transaction. A
    restart or a recovery reads on from the last committed chunk.

    ``reader``: an ``ItemReader`` (optionally an ``ItemStream``), a factory
    returning one (called each time the step is opened, so executions that run
    at once do not share state), or a callable ``read(start)`` yielding the
    items after the first ``start``. ``processor``: an ``ItemProcessor`` or
    None. ``writer``: an ``ItemWriter`` (optionally an ``ItemStream``), a factory
    of one, or a callable ``write(conn, items)``. ``chunk_size`` > 0.
    """

    name: str
    reader: Any
    writer: Any
    chunk_size: int = 100
    processor: Callable[[Any], Any] | None = None
    start_limit: int | None = None
    allow_start_if_complete: bool = False

    def __post_init__(self) -> None:
        _check_name("step", self.name)
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) \
                or self.chunk_size < 1:
            raise InvalidJobDefinition(f"step {self.name!r}: chunk_size must be a positive "
                                       f"integer, got {self.chunk_size!r}")
        if not callable(self.reader) and not hasattr(self.reader, "read"):
            raise InvalidJobDefinition(f"step {self.name!r}: reader must be an ItemReader "
                                       "(with read()), a factory of one, or a callable")
        if not callable(self.writer) and not hasattr(self.writer, "write"):
            raise InvalidJobDefinition(f"step {self.name!r}: writer must be an ItemWriter "
                                       "(with write()), a factory of one, or a callable")
        if self.processor is not None and not callable(self.processor):
            raise InvalidJobDefinition(f"step {self.name!r}: processor must be callable")
        _check_limit(self.name, self.start_limit)

    def definition(self) -> dict[str, Any]:
        """The step's entry in ``register_job``'s definition."""
        out: dict[str, Any] = {"name": self.name, "kind": "chunk",
                               "reader": qualified_name(self.reader),
                               "writer": qualified_name(self.writer),
                               "chunk_size": self.chunk_size}
        return _options(out, self.start_limit, self.allow_start_if_complete)


#: What a gate's timeout decides when nobody decided in time.
OnTimeout = Literal["reject", "approve"]


@dataclass(frozen=True)
class Gate:
    """An approval gate: a step that parks the execution AWAITING_APPROVAL with a
    PENDING approval and releases its worker, until ``approve_gate`` (the next
    step runs, in the same execution) or ``reject_gate`` (the execution ends
    FAILED, ``APPROVAL_REJECTED``) decides it (docs/batch-gates.md).

    ``timeout`` (a ``timedelta`` or seconds): after it, the gate-timeout
    service applies ``on_timeout`` (``"reject"`` or ``"approve"``) once; None
    waits for ever. The rule is stored with the approval when the gate is
    reached. Being a step, an approved gate is COMPLETED and skipped when a
    later failure is restarted (``allow_start_if_complete=True``: ask again);
    a rejected one is FAILED, so a restart asks again.
    """

    name: str
    timeout: timedelta | float | None = None
    on_timeout: OnTimeout = "reject"
    start_limit: int | None = None
    allow_start_if_complete: bool = False

    def __post_init__(self) -> None:
        _check_name("gate", self.name)
        if self.on_timeout not in ("reject", "approve"):
            raise InvalidJobDefinition(f"gate {self.name!r}: on_timeout must be 'reject' or "
                                       f"'approve', got {self.on_timeout!r}")
        if self.timeout is not None:
            seconds = self.timeout_seconds
            if seconds is None or not 0 < seconds <= _MAX_GATE_TIMEOUT:
                raise InvalidJobDefinition(f"gate {self.name!r}: timeout must be positive and at "
                                           f"most 10 years, got {self.timeout!r}")
        _check_limit(self.name, self.start_limit)

    @property
    def timeout_seconds(self) -> float | None:
        """The timeout in seconds (None: no timeout, or not a duration)."""
        t = self.timeout
        if t is None or isinstance(t, bool):
            return None
        if isinstance(t, timedelta):
            return t.total_seconds()
        return float(t) if isinstance(t, int | float) and math.isfinite(t) else None

    @property
    def timeout_delta(self) -> timedelta | None:
        """The timeout as a ``timedelta`` (None: no timeout)."""
        seconds = self.timeout_seconds
        return None if seconds is None else timedelta(seconds=seconds)

    def definition(self) -> dict[str, Any]:
        """The step's entry in ``register_job``'s definition (kind ``gate``)."""
        out: dict[str, Any] = {"name": self.name, "kind": "gate"}
        return _options(out, self.start_limit, self.allow_start_if_complete)


#: The longest gate timeout (10 years as PostgreSQL counts them: 3600 days).
_MAX_GATE_TIMEOUT = 3600 * 86400.0

Step = TaskletStep | ChunkStep | Gate


def _options(out: dict[str, Any], start_limit: int | None, allow: bool) -> dict[str, Any]:
    if start_limit is not None:
        out["start_limit"] = start_limit
    if allow:
        out["allow_start_if_complete"] = True
    return out


@dataclass(frozen=True)
class Job:
    """A named job: its steps in order, and its options.

    ``version``: part of the definition's fingerprint; a changed step list
    under the same version is refused at registration
    (``JobDefinitionChangedError``). ``restartable``: whether a FAILED or
    STOPPED instance may be restarted. ``recovery_policy``: after host loss
    (default ``ResumeForward()``, ``Fail()`` when not restartable).
    ``max_recoveries``: recoveries of one execution (chain) before it ends
    FAILED ``RECOVERY_LIMIT``. ``on_shutdown``: ``"handoff"`` (commit the chunk,
    hand the execution to the next worker), ``"stop"`` (end it STOPPED) or
    ``"pause"`` (park it PAUSED until ``resume_execution``).
    ``queue``: the batch queue of its work items.
    """

    name: str
    steps: Sequence[Step]
    version: str | None = None
    restartable: bool = True
    recovery_policy: RecoveryPolicy | None = None
    max_recoveries: int = 5
    on_shutdown: OnShutdown = "handoff"
    queue: str = "batch"
    by_name: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name("job", self.name)
        if not self.steps:
            raise InvalidJobDefinition(f"job {self.name!r} needs at least one step")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise InvalidJobDefinition(f"job {self.name!r}: step names must be unique: {names}")
        if self.on_shutdown not in ("handoff", "stop", "pause"):
            raise InvalidJobDefinition(f"job {self.name!r}: on_shutdown must be 'handoff', "
                                       f"'stop' or 'pause', got {self.on_shutdown!r}")
        if isinstance(self.max_recoveries, bool) or not isinstance(self.max_recoveries, int) \
                or self.max_recoveries < 0:
            raise InvalidJobDefinition(f"job {self.name!r}: max_recoveries must be an integer "
                                       f">= 0, got {self.max_recoveries!r}")
        policy = self.policy
        if not isinstance(policy, RecoveryPolicy):
            raise InvalidJobDefinition(f"job {self.name!r}: recovery_policy must be "
                                       "ResumeForward(), RestartAll(), RestartFrom(step) or "
                                       f"Fail(), got {policy!r}")
        if not self.restartable and not isinstance(policy, Fail):
            raise InvalidJobDefinition(f"job {self.name!r} is not restartable: its recovery "
                                       "policy can only be Fail()")
        policy.spec(names)
        object.__setattr__(self, "by_name", {s.name: s for s in self.steps})

    @property
    def policy(self) -> RecoveryPolicy:
        """The recovery policy in effect."""
        if self.recovery_policy is not None:
            return self.recovery_policy
        return ResumeForward() if self.restartable else Fail()

    def definition(self) -> dict[str, Any]:
        """The definition ``register_job`` takes."""
        out: dict[str, Any] = {"steps": [s.definition() for s in self.steps],
                               "restartable": self.restartable,
                               "recovery_policy": self.policy.spec([s.name for s in self.steps]),
                               "max_recoveries": self.max_recoveries,
                               "on_shutdown": self.on_shutdown, "queue": self.queue}
        if self.version is not None:
            out["version"] = self.version
        return out

    def step_after(self, name: str) -> str | None:
        """The name of the step after ``name``, or None for the last."""
        names = [s.name for s in self.steps]
        i = names.index(name)
        return names[i + 1] if i + 1 < len(names) else None


def register_job(conn: psycopg.Connection[Any], job: Job) -> str:
    """Register ``job``'s definition (``pgbatch.register_job``); return its fingerprint."""
    row = conn.execute("select pgbatch.register_job(%s, %s)",
                       [job.name, Jsonb(job.definition())]).fetchone()
    assert row is not None
    return str(row[0])


def register_jobs(conn: psycopg.Connection[Any], jobs: Iterable[Job]) -> dict[str, str]:
    """Register each job's definition; return name -> fingerprint."""
    return {job.name: register_job(conn, job) for job in jobs}
