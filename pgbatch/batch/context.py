"""The context of a running step: what tasklets and a chunk step's reader,
processor and writer may ask and tell the engine.

A tasklet gets it as its argument; inside a chunk step (and a tasklet) the
running step's context is also :func:`step_context()` (a context variable of
the worker thread that runs the step).

- ``stop_requested()``: True once a stop was asked for: by ``request_stop()``,
  by an operator (``stop_execution``; read from the database at most every
  ``poll_interval`` seconds) or by the worker's shutdown.
- ``request_stop()``: stop at the next boundary: a chunk step finishes the
  chunk it is in (the items read so far are processed, written and committed),
  reads no further chunk and ends STOPPED (the execution STOPPED, restartable
  from that checkpoint); a tasklet that returns after it ends STOPPED.
- ``request_pause(reason, resume_at=None)``: pause at the current item: a
  chunk step reads no further item, processes and writes the items read so
  far and commits them with the pause in one transaction (the step and the
  execution PAUSED, resumed later from that checkpoint, see
  docs/batch-pause.md); a tasklet that returns after it ends COMPLETED and the
  execution pauses before the next step. ``resume_at`` (tz-aware): a timed
  pause, resumed by the timed-resume service then.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pgbatch._errors import InvalidResumeAt

#: Reads the execution's stop request from the database (fenced by the claim).
StopProbe = Callable[[], bool]


@dataclass(frozen=True)
class PauseRequest:
    """A pause asked for by processing logic: why, and when it resumes by itself."""

    reason: str
    resume_at: datetime | None = None


def pause_request(reason: str, resume_at: datetime | None) -> PauseRequest:
    """A checked :class:`PauseRequest`: ``reason`` a non-empty string of at most 10000
    characters, ``resume_at`` None or tz-aware (``InvalidResumeAt``; the database
    refuses one that is not in the future when the pause is stored)."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 10000:
        raise ValueError(f"a pause reason is a non-empty string of at most 10000 characters, "
                         f"got {reason!r}")
    if resume_at is not None and (not isinstance(resume_at, datetime)
                                  or resume_at.utcoffset() is None):
        raise InvalidResumeAt(f"invalid resume_at: {resume_at!r}, must be a datetime with a "
                              "time zone")
    return PauseRequest(reason, resume_at)


@dataclass
class StepContext:
    """What a running step knows (see the module docstring)."""

    execution_id: int
    job_name: str
    step_name: str
    step_execution_id: int
    #: The execution's job parameters, ``{name: value}``.
    params: dict[str, Any] = field(default_factory=dict)
    #: True when the worker is shutting down.
    shutdown: Callable[[], bool] = field(default=lambda: False, repr=False)
    #: Reads an operator's stop request (None: not available).
    probe: StopProbe | None = field(default=None, repr=False)
    poll_interval: float = 1.0
    _stop_asked: bool = field(default=False, init=False)
    _operator_stop: bool = field(default=False, init=False)
    _polled_at: float | None = field(default=None, init=False)
    _pause: PauseRequest | None = field(default=None, init=False)

    def request_pause(self, reason: str, resume_at: datetime | None = None) -> None:
        """Pause at the current item (see the module docstring); ``resume_at``: tz-aware."""
        self._pause = pause_request(reason, resume_at)

    @property
    def pause_asked(self) -> PauseRequest | None:
        """The step's own ``request_pause()``, if it called it."""
        return self._pause

    def request_stop(self) -> None:
        """Ask the step to stop at the next boundary (see the module docstring)."""
        self._stop_asked = True

    @property
    def stop_asked(self) -> bool:
        """Whether the step's own logic called ``request_stop()``."""
        return self._stop_asked

    def operator_stop_seen(self) -> None:
        """Record that the engine read back an operator's stop request."""
        self._operator_stop = True

    def stop_requested(self) -> bool:
        """Whether a stop was asked for by the step, an operator or the worker's shutdown."""
        if self._stop_asked or self._operator_stop or self.shutdown():
            return True
        now = time.monotonic()
        if self.probe is not None and (self._polled_at is None
                                       or now - self._polled_at >= self.poll_interval):
            self._polled_at = now
            if self.probe():
                self._operator_stop = True
        return self._operator_stop


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "pgbatch_step_context", default=None)


def step_context() -> StepContext:
    """The context of the step running on this thread; RuntimeError outside a step."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("step_context() is only available while a batch step runs")
    return ctx


def set_step_context(ctx: StepContext | None) -> contextvars.Token[StepContext | None]:
    """Make ``ctx`` the running step's context (the executor calls this)."""
    return _current.set(ctx)


def reset_step_context(token: contextvars.Token[StepContext | None]) -> None:
    """Undo ``set_step_context``."""
    _current.reset(token)
