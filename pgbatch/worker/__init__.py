"""The worker: claims jobs, runs their handlers, keeps leases, settles.

Composed of small parts, one module each (see ``docs/design.md``, "How the
code is organised"): ``claimer``, ``runner``, ``lease_keeper``, ``settler``,
``dispatcher``, ``listener``, ``threads``, ``connections``; ``maintenance``
(the loop of periodic ``services``, ``leadership`` by a database-time lease,
the built-in ``queue_services`` and ``vacuum``); ``executor`` is
the seam through which other parts (the batch engine) register handlers for
their own kind of job, ``tasks`` the executor of ``@app.task`` functions,
``context`` the ``JobContext`` handlers get. ``worker`` composes them.
"""

from pgbatch.worker.context import JobContext
from pgbatch.worker.executor import (
    Ack,
    Call,
    DeadLetter,
    Executor,
    Nack,
    Outcome,
    Release,
    UnknownHandler,
    kind_of,
)
from pgbatch.worker.failures import (
    Abort,
    DeadOn,
    Retry,
    TaskArgumentsMismatch,
    TaskTimeout,
    UnknownTask,
)
from pgbatch.worker.stats import WorkerError, WorkerStats, default_node_id
from pgbatch.worker.worker import Worker, run_worker, run_worker_concurrent

__all__ = [
    "Abort",
    "Ack",
    "Call",
    "DeadLetter",
    "DeadOn",
    "Executor",
    "JobContext",
    "Nack",
    "Outcome",
    "Release",
    "Retry",
    "TaskArgumentsMismatch",
    "TaskTimeout",
    "UnknownHandler",
    "UnknownTask",
    "Worker",
    "WorkerError",
    "WorkerStats",
    "default_node_id",
    "kind_of",
    "run_worker",
    "run_worker_concurrent",
]
