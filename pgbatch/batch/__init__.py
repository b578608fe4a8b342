"""The batch engine's Python side: job and step definitions, the step executor
a worker runs batch work items with, and the recovery service (docs/batch.md).

A :class:`Job` is an ordered list of steps (:class:`TaskletStep`,
:class:`ChunkStep`, :class:`Gate`) with its options (recovery policy, ``max_recoveries``,
``on_shutdown``, ``version``). :func:`register_jobs` registers their
definitions in the database (``pgbatch.register_job``); ``pgbatch.launch_job``
launches one (processing logic pauses it with ``ctx.request_pause()`` or
``raise PauseJob``, docs/batch-pause.md); a worker whose App called :func:`use_batch` (the
:class:`BatchExecutor` and the recovery service) runs and recovers it.
"""

from pgbatch._errors import (
    InvalidCursor,
    InvalidReaderQuery,
    InvalidWriterItem,
    InvalidWriterTarget,
)
from pgbatch.batch.app import use_batch
from pgbatch.batch.context import PauseRequest, StepContext, step_context
from pgbatch.batch.definition import (
    ChunkStep,
    Gate,
    Job,
    OnShutdown,
    Step,
    TaskletStep,
    register_job,
    register_jobs,
)
from pgbatch.batch.executor import BATCH_KIND, BatchExecutor
from pgbatch.batch.faults import fault_point, set_fault_hook
from pgbatch.batch.gates import ApprovalInfo, ApprovalResult
from pgbatch.batch.items import ExecutionContext, ItemProcessor, ItemReader, ItemStream, ItemWriter
from pgbatch.batch.operator import (
    AsyncJobOperator,
    ExecutionEvent,
    JobExecutionDetail,
    JobExecutionInfo,
    JobOperator,
    PausedExecution,
    ResumeResult,
    StepExecutionInfo,
    TransitionResult,
)
from pgbatch.batch.parking import PARKED_CHANNEL, Parked, ParkedHook, parse_parked
from pgbatch.batch.pausing import PauseJob
from pgbatch.batch.policies import Fail, RecoveryPolicy, RestartAll, RestartFrom, ResumeForward
from pgbatch.batch.readers import SqlReader
from pgbatch.batch.recovery import recovery_service
from pgbatch.batch.writers import TableWriter

__all__ = [
    "BATCH_KIND",
    "PARKED_CHANNEL",
    "ApprovalInfo",
    "ApprovalResult",
    "AsyncJobOperator",
    "BatchExecutor",
    "ChunkStep",
    "ExecutionContext",
    "ExecutionEvent",
    "Fail",
    "Gate",
    "InvalidCursor",
    "InvalidReaderQuery",
    "InvalidWriterItem",
    "InvalidWriterTarget",
    "ItemProcessor",
    "ItemReader",
    "ItemStream",
    "ItemWriter",
    "Job",
    "JobExecutionDetail",
    "JobExecutionInfo",
    "JobOperator",
    "OnShutdown",
    "Parked",
    "ParkedHook",
    "PauseJob",
    "PauseRequest",
    "PausedExecution",
    "RecoveryPolicy",
    "RestartAll",
    "RestartFrom",
    "ResumeForward",
    "ResumeResult",
    "SqlReader",
    "Step",
    "StepContext",
    "StepExecutionInfo",
    "TableWriter",
    "TaskletStep",
    "TransitionResult",
    "fault_point",
    "parse_parked",
    "recovery_service",
    "register_job",
    "register_jobs",
    "set_fault_hook",
    "step_context",
    "use_batch",
]
