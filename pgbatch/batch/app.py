"""Wiring the batch engine into an App: the step executor and the recovery service."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from pgbatch._app import App
from pgbatch.batch.definition import Job
from pgbatch.batch.executor import BATCH_KIND, BatchExecutor
from pgbatch.batch.parking import ParkedHook
from pgbatch.batch.recovery import recovery_service


def use_batch(app: App, jobs: Iterable[Job], *, lease: timedelta = timedelta(seconds=30),
              recovery_interval: float = 5.0, grace: timedelta = timedelta(seconds=0),
              poll_interval: float = 1.0, on_parked: ParkedHook | None = None,
              pipeline: bool = True, server_loop: bool = True) -> BatchExecutor:
    """Let every worker of ``app`` run ``jobs``: registers a :class:`BatchExecutor`
    (kind ``batch_step``) and the batch recovery service (every node, each
    ``recovery_interval`` seconds; it also registers the job definitions when
    the worker starts). ``on_parked``: the executor's hook for executions it parks
    (:class:`~pgbatch.batch.parking.Parked`). ``pipeline``: chunk steps run in the
    server run their chunk loop in the database (``server_loop``,
    :mod:`pgbatch.batch.server_loop`); with ``server_loop=False`` the worker sends
    each chunk, pipelined (:mod:`pgbatch.batch.pipeline`) unless ``pipeline`` is
    False (one by one). Returns the executor."""
    jobs = list(jobs)
    executor = BatchExecutor(jobs, lease=lease, poll_interval=poll_interval,
                             on_parked=on_parked, pipeline=pipeline,
                             server_loop=server_loop)
    app.register_executor(BATCH_KIND, executor)
    app.add_maintenance_service(recovery_service(jobs, interval=recovery_interval, grace=grace,
                                                 on_registered=executor.registered))
    return executor
