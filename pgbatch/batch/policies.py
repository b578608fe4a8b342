"""Recovery policies of a job: what happens to a running execution whose worker
was lost (killed, its host gone, its lease expired; BATCH.md §7).

- :class:`ResumeForward` (default for restartable jobs): the same execution
  goes on; completed steps stay done, the running step continues from its
  last committed chunk. Each recovery counts; beyond ``max_recoveries`` the
  execution ends FAILED with exit code ``RECOVERY_LIMIT``.
- :class:`RestartAll`: the execution ends FAILED (``HOST_LOST``) and a new one
  runs every step from scratch, with empty contexts.
- :class:`RestartFrom` ``(step)``: the same, from ``step`` (a name or a 1-based
  index), or from the step that was running when that one comes earlier.
- :class:`Fail` (default when the job is not restartable): FAILED
  (``HOST_LOST``); an operator may restart it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgbatch._errors import InvalidJobDefinition


class RecoveryPolicy:
    """Base of the recovery policies."""

    __slots__ = ()

    def spec(self, step_names: Sequence[str]) -> str:
        """The policy as ``register_job`` stores it."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ResumeForward(RecoveryPolicy):
    """Go on with the same execution from the last committed chunk."""

    def spec(self, step_names: Sequence[str]) -> str:
        """``"ResumeForward"``."""
        return "ResumeForward"


@dataclass(frozen=True, slots=True)
class RestartAll(RecoveryPolicy):
    """Fail the execution and run every step again in a new one."""

    def spec(self, step_names: Sequence[str]) -> str:
        """``"RestartAll"``."""
        return "RestartAll"


@dataclass(frozen=True, slots=True)
class RestartFrom(RecoveryPolicy):
    """Fail the execution and run a new one from ``step`` (name or 1-based index)."""

    step: int | str

    def spec(self, step_names: Sequence[str]) -> str:
        """``"RestartFrom:<step name>"``; InvalidJobDefinition for an unknown step."""
        if isinstance(self.step, bool) or not isinstance(self.step, (int, str)):
            raise InvalidJobDefinition("RestartFrom needs a step name or a 1-based index, "
                                       f"got {self.step!r}")
        if isinstance(self.step, int):
            if not 1 <= self.step <= len(step_names):
                raise InvalidJobDefinition(
                    f"RestartFrom({self.step}): the job has steps 1 to {len(step_names)}")
            return f"RestartFrom:{step_names[self.step - 1]}"
        if self.step not in step_names:
            raise InvalidJobDefinition(f"RestartFrom({self.step!r}): the job has no such step")
        return f"RestartFrom:{self.step}"


@dataclass(frozen=True, slots=True)
class Fail(RecoveryPolicy):
    """Fail the execution; nothing else."""

    def spec(self, step_names: Sequence[str]) -> str:
        """``"Fail"``."""
        return "Fail"
