"""Failures no retry can fix: the job is dead at once, with a hint.

A job that names a task this worker does not know (``UnknownTask``), or whose
kwargs do not fit the task function's signature (``TaskArgumentsMismatch``),
fails the same way at every attempt. The runner dead-letters such a job at its
first attempt instead of retrying it ``max_attempts`` times with backoff; the
dead job's ``last_error`` is ``{"type": "DeadLettered", "message": "<Name>:
<hint>"}``, where the hint names the task's full ``module.function`` name or
its signature. ``Abort`` is the base class: a task may raise it (or a subclass)
itself to end its job dead at once.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pgbatch import _limits
from pgbatch._types import AckEffects
from pgbatch.worker.executor import UnknownHandler


class Abort(Exception):
    """Raised by a task: no retry, the job is dead at once (its message is the reason)."""

    def reason(self) -> str:
        """The dead-letter reason: ``"<ExceptionType>: <message>"`` (``DeadOn``: the task's)."""
        message = str(self)
        if isinstance(self, DeadOn):
            return message
        return f"{type(self).__name__}: {message}" if message else type(self).__name__


class UnknownTask(UnknownHandler, Abort):
    """The job names a task that is not registered in this worker."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "UnknownTask")


class TaskArgumentsMismatch(Abort, TypeError):
    """The job's kwargs do not fit the task function's signature."""


def unknown_task(name: object, registered: Iterable[str]) -> UnknownTask:
    """An ``UnknownTask`` for ``name``, suggesting the registered names it may mean."""
    names = sorted(registered)
    if not isinstance(name, str):
        return UnknownTask(f"the job's payload names no task ({name!r}); a task job's payload "
                           'is {"task": "module.function", "kwargs": {...}}')
    message = f"no task named {name!r} is registered in this worker"
    tail = [n for n in names if n.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]]
    close = tail or difflib.get_close_matches(name, names, n=3)
    if close:
        message += "; did you mean " + " or ".join(repr(n) for n in close) + "?"
    if "." not in name:
        message += " (a task's name is its full module.function name unless it was given name=)"
    if name.startswith("__main__."):
        message += (" (tasks defined in a script run as __main__ cannot be found by a worker: "
                    "define them in an importable module)")
    return UnknownTask(message)


def check_arguments(name: str, fn: Callable[..., Any], kwargs: Mapping[str, Any],
                    exc: TypeError, *, with_context: bool) -> None:
    """Raise ``TaskArgumentsMismatch`` (from ``exc``) when ``kwargs`` cannot bind to ``fn``.

    Called only after ``fn(**kwargs)`` raised ``exc``: a ``TypeError`` raised
    inside a task whose arguments do fit is an ordinary failure (the caller
    re-raises it).
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        if with_context:
            sig.bind(None, **kwargs)
        else:
            sig.bind(**kwargs)
    except TypeError as bind_error:
        raise TaskArgumentsMismatch(
            f"task {name}{sig} cannot be called with kwargs {sorted(kwargs)}: "
            f"{bind_error}") from exc


class TaskTimeout(TimeoutError):
    """An attempt ran past its task's ``timeout=`` (an ordinary failure: retried).

    An async task is cancelled at the timeout. A sync task cannot be
    interrupted: its thread runs on, and the worker holds its slot and its
    claim (renewing the lease) until the function returns, then fails the
    attempt; so a second attempt never runs while the first still does.
    """


class Retry(Exception):
    """Raised by a task: fail this attempt and retry at ``at`` (or after ``delay``).

    ``Retry(at=datetime)``, ``Retry(delay=seconds or timedelta)``, or
    ``Retry()`` for the task's usual backoff; an optional message is stored as
    the attempt's error. The attempt counts: at the last one the job is dead.
    """

    def __init__(self, message: str = "", *, at: datetime | None = None,
                 delay: float | timedelta | None = None) -> None:
        super().__init__(message)
        if at is not None and delay is not None:
            raise ValueError("Retry takes at= or delay=, not both")
        if at is not None and at.tzinfo is None:
            raise ValueError("Retry(at=...) needs an aware datetime (with a time zone)")
        self.at = at
        self.delay = timedelta(seconds=delay) if isinstance(delay, int | float) else delay

    def retry_at(self) -> datetime | None:
        """When to retry; None for the task's backoff."""
        if self.at is not None:
            return self.at
        if self.delay is not None:
            return datetime.now(UTC) + self.delay
        return None


class DeadOn(Abort):
    """A task's exception that its ``dead_on``/``retry_on`` options make final (no retry)."""


ExceptionTypes = tuple[type[BaseException], ...]


def final_failure(exc: BaseException, retry_on: ExceptionTypes | None,
                  dead_on: ExceptionTypes) -> DeadOn | None:
    """A ``DeadOn`` for ``exc`` when the task's options say no retry can help, else None."""
    if isinstance(exc, Abort | Retry):
        return None
    if (dead_on and isinstance(exc, dead_on)) or (retry_on is not None
                                                   and not isinstance(exc, retry_on)):
        message = str(exc)
        return DeadOn(f"{type(exc).__qualname__}: {message}" if message
                      else type(exc).__qualname__)
    return None


class ResultRefused(Abort):
    """A task's return value cannot be kept: not JSON, or over ``max_result_bytes``.

    The job is dead at once (a retry would run the work again and return the
    same): return less, and keep large results elsewhere (``kv_put``, a table).
    """


def returned_effects(value: Any) -> AckEffects | None:
    """The ack effects of what a task returned: its own ``AckEffects``, a kept value, or None.

    Raises ``ResultRefused`` for a value that is not JSON or whose JSON text
    is over ``limits()["max_result_bytes"]`` (SQL checks the stored jsonb size
    again at the ack).
    """
    if value is None or isinstance(value, AckEffects):
        return value
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ResultRefused(f"the task returned a {type(value).__qualname__}, which is not "
                            f"JSON ({exc}); return a JSON value (or None)") from None
    size = len(text.encode())
    if size > _limits.MAX_RESULT_BYTES:
        raise ResultRefused(f"the task's return value is {size} bytes of JSON, at most "
                            f"{_limits.MAX_RESULT_BYTES} are kept (max_result_bytes); keep large "
                            "results elsewhere and return a reference")
    return AckEffects(return_value=value)
