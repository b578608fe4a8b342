"""The batch engine's Python side: job and step definitions, and the step
executor a worker runs batch work items with (docs/batch.md).

A :class:`Job` is an ordered list of steps (:class:`TaskletStep`,
:class:`ChunkStep`). :func:`register_jobs` registers their definitions in the
database (``pgbatch.register_job``); ``pgbatch.launch_job`` launches one; a
worker whose App registered a :class:`BatchExecutor`
(``app.register_executor(BATCH_KIND, BatchExecutor(jobs))``) runs it.
"""

from pgbatch._errors import (
    InvalidCursor,
    InvalidReaderQuery,
    InvalidWriterItem,
    InvalidWriterTarget,
)
from pgbatch.batch.definition import ChunkStep, Job, Step, TaskletStep, register_jobs
from pgbatch.batch.executor import BATCH_KIND, BatchExecutor
from pgbatch.batch.operator import (
    AsyncJobOperator,
    ExecutionEvent,
    JobExecutionDetail,
    JobExecutionInfo,
    JobOperator,
    StepExecutionInfo,
    TransitionResult,
)
from pgbatch.batch.readers import SqlReader
from pgbatch.batch.writers import TableWriter

__all__ = [
    "BATCH_KIND",
    "AsyncJobOperator",
    "BatchExecutor",
    "ChunkStep",
    "ExecutionEvent",
    "InvalidCursor",
    "InvalidReaderQuery",
    "InvalidWriterItem",
    "InvalidWriterTarget",
    "Job",
    "JobExecutionDetail",
    "JobExecutionInfo",
    "JobOperator",
    "SqlReader",
    "Step",
    "StepExecutionInfo",
    "TableWriter",
    "TaskletStep",
    "TransitionResult",
    "register_jobs",
]
