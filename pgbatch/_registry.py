"""The task registry and queue removal as SQL API calls (``Op``) and value types.

Workers record their tasks' options (``register_tasks``) so that an enqueue
that names a task without the App's code (``pgbatch enqueue --task``,
``pgbatch.enqueue_task`` in SQL, ``Client.enqueue_task``) gets the task's
queue, priority and max_attempts wherever the caller gives none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pgbatch._ops import Op, _columns, _int, _none, _positional, _scalar
from pgbatch._types import Json, dump_json

if TYPE_CHECKING:
    from pgbatch._task import Task


@dataclass(frozen=True)
class TaskInfo:
    """A row of the task registry: a task's options, as the last worker that has it said."""

    name: str
    queue: str
    priority: int
    max_attempts: int
    options: dict[str, Any]
    registered_by: str
    registered_at: datetime


def task_entry(task: Task[Any, Any]) -> dict[str, Json]:
    """The registry entry of ``task`` (what ``register_tasks`` takes)."""
    o = task.options
    return {"name": task.name, "queue": o.queue, "priority": o.priority,
            "max_attempts": o.max_attempts,
            "options": {"lease_seconds": o.lease.total_seconds(), "timeout_seconds": o.timeout,
                        "backoff_base_seconds": o.backoff_base.total_seconds(),
                        "backoff_cap_seconds": o.backoff_cap.total_seconds(),
                        "pass_context": o.pass_context, "transactional": o.transactional,
                        "is_async": task.is_async}}


def register_tasks(node_id: str, tasks: Sequence[Mapping[str, Json]]) -> Op[int]:
    return Op("select pgbatch.register_tasks(%s, %s::jsonb)",
              (node_id, dump_json([dict(t) for t in tasks], what="tasks")), _int)


def list_tasks(name: str | None) -> Op[list[TaskInfo]]:
    return Op(f"select {_columns(TaskInfo)} from pgbatch.list_tasks(%s)", (name,),
              _positional(TaskInfo))


def enqueue_task(task: str, kwargs: Mapping[str, Json] | None, queue: str | None,
                 run_at: datetime | None, priority: int | None, dedup_key: str | None,
                 max_attempts: int | None, id: UUID | None) -> Op[UUID]:
    return Op("select pgbatch.enqueue_task(%s, %s::jsonb, %s, %s, %s, %s, %s, %s)",
              (task, dump_json(dict(kwargs or {}), what="kwargs"), queue, run_at, priority,
               dedup_key, max_attempts, id),
              lambda rows: UUID(str(_scalar(rows))))


def drop_queue(queue: str) -> Op[None]:
    return Op("select pgbatch.drop_queue(%s)", (queue,), _none)

