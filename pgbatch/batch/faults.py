"""Named fault points of the step executor, for crash tests (BATCH.md,
acceptance harness).

The executor calls :func:`fault_point` at each point with what it knows; a
test installs a hook with :func:`set_fault_hook` that may raise, block, or
kill the process (``os.kill(os.getpid(), signal.SIGKILL)``). Without a hook a
fault point costs one attribute read. The points:

- ``after_claim`` (``execution_id``): start_execution committed.
- ``before_step_start`` (``execution_id``, ``step``): before start_step.
- ``after_read`` (``execution_id``, ``step``, ``k``, ``item``): the ``k``-th
  item since the step was opened by this claim was read.
- ``after_write_before_commit`` (``execution_id``, ``step``, ``seq``): the
  writer wrote chunk ``seq`` (0-based), its transaction is not committed
  (for a writer whose chunk is folded into the commit statement, such as
  ``TableWriter(method="unnest")``: right before that statement is sent; for a
  step run in the server whose commits are pipelined, :mod:`pgbatch.batch.pipeline`:
  once the chunk's page insert returned, while the chunk before may still be
  committing).
- ``after_commit_before_ack`` (``execution_id``, ``step``, ``seq``): chunk
  ``seq`` committed (``seq`` = the new chunk count); the work item is not
  acked yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: A fault hook: called with the point's name and its details.
FaultHook = Callable[[str, dict[str, Any]], None]

_hook: FaultHook | None = None


def set_fault_hook(hook: FaultHook | None) -> None:
    """Install ``hook`` for every fault point of this process (None removes it)."""
    global _hook
    _hook = hook


def installed() -> bool:
    """Whether a fault hook is installed (hot loops skip their fault points if not)."""
    return _hook is not None


def fault_point(name: str, **info: Any) -> None:
    """Call the installed hook, if any, for point ``name``."""
    hook = _hook
    if hook is not None:
        hook(name, info)
