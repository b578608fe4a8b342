"""The jobs of the pause tests: a chunk step over 1..n whose processor pauses
at planned items (``ctx.request_pause()`` or ``raise PauseJob``), a tasklet
that pauses, and a worker on them in this process."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pgbatch import MaintenanceConfig, Worker
from pgbatch.batch import (
    ChunkStep,
    ExecutionContext,
    Job,
    OnShutdown,
    Parked,
    PauseJob,
    StepContext,
    TaskletStep,
    register_jobs,
    step_context,
    use_batch,
)
from tests.helpers import scalar
from tests.worker_harness import LoopThread, app_on

Conn = psycopg.Connection[Any]
OUT_DDL = "create table if not exists public.out (item_id int primary key, step text)"


@dataclass
class PausePlan:
    """Items at which the processor pauses once: ``request`` (request_pause) or
    ``raise`` (PauseJob), with an optional resume_at; tasklet pauses by name."""

    at: dict[int, str] = field(default_factory=dict)
    resume_at: datetime | None = None
    tasklet: dict[str, str] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, item: int) -> str | None:
        with self.lock:
            return self.at.pop(item, None)


class Numbers:
    """An ItemReader and ItemStream over 1..n, its cursor in the checkpoint."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.next = 1

    def open(self, context: ExecutionContext) -> None:
        self.next = int(context.get("next", 1))

    def read(self) -> int | None:
        if self.next > self.n:
            return None
        self.next += 1
        return self.next - 1

    def update(self, context: ExecutionContext) -> None:
        context["next"] = self.next

    def close(self) -> None:
        return None


class OutWriter:
    """Writes items into public.out in the chunk's transaction (a duplicate fails)."""

    def __init__(self, step: str) -> None:
        self.step = step

    def write(self, conn: Conn, items: Sequence[Any]) -> None:
        with conn.cursor() as cur:
            cur.executemany("insert into public.out (item_id, step) values (%s, %s)",
                            [[i, self.step] for i in items])


def pausing_processor(plan: PausePlan) -> Any:
    def process(item: int) -> int:
        what = plan.take(item)
        if what == "request":
            step_context().request_pause(f"check item {item}", plan.resume_at)
        elif what == "raise":
            raise PauseJob(f"item {item} needs a person", plan.resume_at)
        return item

    return process


def tasklet(plan: PausePlan, name: str) -> Any:
    def run(ctx: StepContext) -> None:
        with plan.lock:
            plan.ran.append(name)
            what = plan.tasklet.pop(name, None)
        if what == "request":
            ctx.request_pause(f"verify after {name}", plan.resume_at)
        elif what == "raise":
            raise PauseJob(f"{name} waits", plan.resume_at)

    return run


def chunk_job(plan: PausePlan, n: int = 23, chunk_size: int = 5, name: str = "pausing",
              on_shutdown: OnShutdown = "handoff", version: str | None = None,
              steps: Sequence[str] = ("load",)) -> Job:
    """A job of chunk steps ``steps`` over 1..n (each writes into public.out)."""
    return Job(name, [ChunkStep(s, lambda: Numbers(n), (lambda s=s: OutWriter(s)),
                                processor=pausing_processor(plan), chunk_size=chunk_size)
                      for s in steps], on_shutdown=on_shutdown, version=version)


def tasklet_job(plan: PausePlan, name: str = "tasklets") -> Job:
    """Three tasklets a, b, c."""
    return Job(name, [TaskletStep(s, tasklet(plan, s)) for s in ("a", "b", "c")])


def launch(conn: Conn, job: Job, params: dict[str, Any] | None = None) -> int:
    return int(scalar(conn, "select pgbatch.launch_job(%s, %s)", [job.name, Jsonb(params or {})]))


@contextmanager
def worker_on(dsn: str, jobs: Sequence[Job], parked: list[Parked] | None = None,
              resume_interval: float = 0.2, idle: bool = True) -> Iterator[Worker]:
    """A worker (with its maintenance loop) running ``jobs`` in this process."""
    with app_on(dsn) as app, LoopThread() as lt:
        use_batch(app, jobs, recovery_interval=0.5,
                  on_parked=parked.append if parked is not None else None)
        cfg = MaintenanceConfig(interval=0.2, batch_resume_interval=resume_interval)
        worker = lt.start(Worker(app, concurrency=1, poll_interval=0.2, maintenance_config=cfg),
                          idle=idle)
        yield worker
        lt.stop(worker)


def prepare(conn: Conn, jobs: Sequence[Job]) -> None:
    conn.execute(OUT_DDL)
    register_jobs(conn, list(jobs))
