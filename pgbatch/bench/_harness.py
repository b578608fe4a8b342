"""The benchmark's server, its fresh databases, and the measurements every scenario uses.

By default the benchmark starts its own embedded PostgreSQL in a temporary directory
(fsync on, synchronous_commit on, shared_buffers 256MB, max_connections 200) and
deletes it afterwards. With ``--dsn`` it uses that server instead (its role must be
able to create databases); it then creates and drops databases named
``pgbatch_bench_*`` and records the server's settings as they are.

Every scenario gets a fresh database cloned from a template that holds the installed
schema (``CREATE DATABASE … TEMPLATE``), so no scenario sees another's rows.

Raw SQL on purpose: creating and dropping the scenario databases, bulk loads,
and the server counters (WAL position, settings, version) a measurement reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgbatch._install import install_schema
from pgbatch.bench._cpu import read_stat
from pgbatch.embedded import PgServer, ServerError, embedded_bin_dir

#: Settings of the server the benchmark starts (durability is never traded for speed).
BENCH_SERVER_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "256MB",
    "max_connections": "200",
}

#: Server settings recorded in the results.
RECORDED_SETTINGS = (
    "server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level",
    "shared_buffers", "max_connections", "checkpoint_timeout", "max_wal_size",
    "wal_sync_method", "autovacuum",
)

DB_PREFIX = "pgbatch_bench_"

#: The payload of a no-op job, as ``App.task`` would enqueue it.
NOOP_PAYLOAD: dict[str, Any] = {"task": "noop", "kwargs": {}}


@dataclass
class Sizes:
    """How much work each scenario does (full or quick mode, times ``--scale``)."""

    quick: bool
    runs: int
    pgbench_seconds: float
    core_jobs: int
    enqueue_jobs: int
    enqueue_batch: int
    process_jobs: int
    latency_samples: int
    growth_sizes: tuple[int, ...]
    growth_pending: int
    growth_cycles: int
    soak_minutes: float
    soak_rate: float | None
    fanout_jobs: int
    fanout_waiters: int
    fanout_processes: int
    batch_rows: int = 1_000_000
    schedules: int = 10_000
    sync_tasks: bool = False
    web_archived: int = 1_000_000
    web_requests: int = 200

    @classmethod
    def build(cls, *, quick: bool, runs: int | None, scale: float,
              soak_minutes: float | None, pgbench_seconds: float | None,
              soak_rate: float | None, sync_tasks: bool) -> Sizes:
        """Sizes for full or quick mode; ``scale`` multiplies the job counts."""
        def n(full: int, q: int, floor: int = 1) -> int:
            return max(floor, round((q if quick else full) * scale))

        return cls(
            quick=quick,
            runs=runs if runs is not None else (1 if quick else 3),
            pgbench_seconds=pgbench_seconds if pgbench_seconds is not None else (
                1.0 if quick else 3.0),
            core_jobs=n(20_000, 4_000, 100),
            enqueue_jobs=n(20_000, 2_000, 100),
            enqueue_batch=1_000,
            process_jobs=n(20_000, 4_000, 100),
            latency_samples=n(200, 30, 5),
            growth_sizes=tuple(n(s, q, 0) for s, q in
                               ((0, 0), (100_000, 10_000), (1_000_000, 100_000))),
            growth_pending=n(100_000, 10_000, 1_000),
            growth_cycles=n(2_000, 400, 50),
            soak_minutes=soak_minutes if soak_minutes is not None else (0.25 if quick else 10.0),
            soak_rate=soak_rate,
            fanout_jobs=n(20, 3, 2),
            fanout_waiters=50,
            fanout_processes=4,
            batch_rows=n(1_000_000, 100_000, 1_000),
            schedules=n(10_000, 1_000, 100),
            sync_tasks=sync_tasks,
            web_archived=n(1_000_000, 20_000, 1_000),
            web_requests=n(200, 40, 10),
        )


@dataclass
class BenchServer:
    """The server under test: our own embedded one, or the one at ``dsn``."""

    dsn: str | None = None
    server: PgServer | None = None
    base_dsn: str = ""
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    template: str | None = None
    _owned_dir: Path | None = None

    def start(self) -> None:
        """Start the embedded server (unless a DSN was given) and build the template."""
        self.workdir = _short_tmp_dir("pgbatch-bench-")
        if self.dsn:
            self.base_dsn = self.dsn
        else:
            self._owned_dir = self.workdir
            self.server = PgServer.embedded(self.workdir / "data", settings=BENCH_SERVER_SETTINGS)
            self.server.start()
            self.base_dsn = self.server.dsn()
        self.template = f"{DB_PREFIX}tpl_{secrets.token_hex(4)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)))
        with psycopg.connect(self.dsn_for(self.template)) as conn:
            install_schema(conn)
            conn.commit()

    def stop(self) -> None:
        """Drop the template (when on a foreign server) and stop our own server."""
        try:
            if self.template is not None and self.server is None:
                with contextlib.suppress(psycopg.Error), self.admin() as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.template)))
        finally:
            if self.server is not None:
                with contextlib.suppress(ServerError):
                    self.server.destroy()
            if self._owned_dir is not None:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
            elif self.workdir.exists():
                shutil.rmtree(self.workdir, ignore_errors=True)

    def dsn_for(self, dbname: str) -> str:
        """A DSN for database ``dbname`` on the server under test."""
        return make_conninfo(self.base_dsn, dbname=dbname)

    def admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the maintenance database."""
        dbname = "postgres"
        if self.dsn:
            dbname = conninfo_to_dict(self.dsn).get("dbname") or "postgres"  # type: ignore[assignment]
        return psycopg.connect(self.dsn_for(str(dbname)), autocommit=True)

    @contextlib.contextmanager
    def fresh_db(self) -> Iterator[str]:
        """A new database with the schema installed (cloned from the template); dropped after."""
        assert self.template is not None
        name = f"{DB_PREFIX}{secrets.token_hex(5)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.template)))
        try:
            yield self.dsn_for(name)
        finally:
            with contextlib.suppress(psycopg.Error), self.admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))

    def postmaster_pid(self) -> int | None:
        """The server's postmaster process id when it runs on this machine and is visible."""
        if self.server is not None:
            return self.server.pid()
        try:
            with self.admin() as conn:
                row = conn.execute("select pg_backend_pid()").fetchone()
        except psycopg.Error:
            return None
        if row is None:
            return None
        stat = read_stat(int(row[0]))
        return int(stat[1]) if stat is not None else None

    def pgbench(self) -> Path | None:
        """The pgbench program: the embedded build's, else one on PATH."""
        try:
            path = embedded_bin_dir() / "pgbench"
            if path.exists():
                return path
        except ServerError:
            pass
        found = shutil.which("pgbench")
        return Path(found) if found else None


def _short_tmp_dir(prefix: str) -> Path:
    base = tempfile.gettempdir()
    if len(base) > 40 and os.path.isdir("/tmp"):  # noqa: S108 - short socket paths
        base = "/tmp"  # noqa: S108
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


# ---------------------------------------------------------------------- database helpers


def connect(dsn: str) -> psycopg.Connection[Any]:
    """An autocommit connection (one statement, one transaction)."""
    return psycopg.connect(dsn, autocommit=True)


def scalar(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row of ``query``."""
    row = conn.execute(query, params or None).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row[0]


def preload(conn: psycopg.Connection[Any], queue: str, n: int, payload: dict[str, Any],
            batch: int = 5_000) -> None:
    """Insert ``n`` pending jobs on ``queue`` through ``enqueue_many`` (setup, not measured)."""
    body = json.dumps({"queue": queue, "payload": payload})
    done = 0
    while done < n:
        k = min(batch, n - done)
        conn.execute(
            "select pgbatch.enqueue_many("
            "(select jsonb_agg(%s::jsonb) from generate_series(1, %s)))",
            (body, k))
        done += k


def wal_lsn(conn: psycopg.Connection[Any]) -> int:
    """The WAL insert position in bytes (cluster-wide)."""
    return int(scalar(conn, "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"))


def checkpoint(conn: psycopg.Connection[Any]) -> None:
    """CHECKPOINT, so a timed checkpoint does not land inside the measured window."""
    conn.execute("CHECKPOINT")


# ---------------------------------------------------------------------- machine info


def machine_info(server: BenchServer) -> dict[str, Any]:
    """CPU, memory, OS, Python and PostgreSQL of this run."""
    cpu_model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_mb: int | None = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        m = re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(encoding="utf-8"),
                      re.MULTILINE)
        mem_mb = int(m.group(1)) // 1024 if m else None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    settings: dict[str, str] = {}
    version = ""
    with server.admin() as conn:
        version = str(scalar(conn, "select version()"))
        for name in RECORDED_SETTINGS:
            with contextlib.suppress(psycopg.Error):
                settings[name] = str(scalar(conn, "select current_setting(%s)", (name,)))
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_mb": mem_mb,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "psycopg": psycopg.__version__,
        "postgresql": version,
        "server": "embedded (started by the benchmark)" if server.server is not None
                  else "external (--dsn)",
        "server_settings": settings,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": _git_describe(),
    }


def _git_describe() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty.strip() else "")


def loadavg() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages."""
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return None


# ---------------------------------------------------------------------- scenario context


@dataclass
class Context:
    """What every scenario gets: the server, the sizes, and earlier scenarios' results."""

    server: BenchServer
    sizes: Sizes
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)  # scenario id -> ScenarioResult
    verbose: bool = False
    #: The interpreter that runs the peers (``--peers-python``; None: see peer_env).
    peers_python: str | None = None
    #: The peers BP measures (``--peers-libs``; None: every importable one).
    peers_libs: tuple[str, ...] | None = None

    def log(self, message: str) -> None:
        """Progress on stderr (the table goes to stdout)."""
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
