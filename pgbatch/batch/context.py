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
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Reads the execution's stop request from the database (fenced by the claim).
StopProbe = Callable[[], bool]


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
