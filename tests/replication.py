"""A primary and a streaming standby on loopback, for the failover and replication tests.

``ReplicatedPair`` runs two real PostgreSQL servers of the session's kind
(``PGBATCH_TEST_PG=system``: the system PostgreSQL, e.g. 15; else the
embedded one): ``initdb`` the primary, ``pg_basebackup -R -X stream`` the
standby from it, start both, and wait until the primary's
``pg_stat_replication`` shows the standby streaming (``sync`` when the
primary has ``synchronous_standby_names``). The standby's own
``synchronous_standby_names`` is empty: once promoted it has no standby to
wait for. ``multi_dsn`` is the libpq multi-host DSN of both with
``target_session_attrs=read-write``.

``kill_primary`` SIGKILLs the primary's postmaster (its backends exit when
they notice); ``promote`` runs ``pg_ctl promote -w`` on the standby.
Programs run as the servers' OS user through ``runuser`` when this process
is root, as ``PgServer`` does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgbatch import _install
from pgbatch.embedded import PgServer
from pgbatch.embedded.host import pick_free_port
from tests.conftest import ensure_test_worker_login, short_tmp_dir

#: The database the pair's tests use.
DBNAME = "pgbatch"
#: Seconds to wait for the standby to stream.
STREAM_TIMEOUT = 60.0


def server_kind() -> str:
    """``"system"`` or ``"embedded"``; skips the test for a server the session does not own."""
    kind = os.environ.get("PGBATCH_TEST_PG", "embedded").strip().lower() or "embedded"
    if os.environ.get("PGBATCH_TEST_DSN") or kind not in ("embedded", "system"):
        pytest.skip("needs servers of its own (embedded or system PostgreSQL)")
    return kind


class ReplicatedPair:
    """A primary and its streaming standby (see the module docstring)."""

    def __init__(self, root: Path, *, synchronous: bool, kind: str) -> None:
        factory = PgServer.system if kind == "system" else PgServer.embedded
        common = {"max_connections": "100", "wal_sender_timeout": "5s",
                  "wal_receiver_status_interval": "1s"}
        self.synchronous = synchronous
        self.primary = factory(root / "primary", port=pick_free_port(), settings={
            **common, "synchronous_standby_names": "*" if synchronous else "",
            "synchronous_commit": "on"})
        standby_port = pick_free_port()
        while standby_port == self.primary.port:
            standby_port = pick_free_port()
        self.standby_dir = root / "standby"
        self.standby = factory(self.standby_dir, port=standby_port, settings={
            **common, "synchronous_standby_names": ""})

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        """Start the primary, install the schema, clone and start the standby, wait for it."""
        self.primary.start()
        # no standby yet to wait for: the setup commits locally
        local = "-c synchronous_commit=local"
        with psycopg.connect(self.primary.dsn(), autocommit=True, options=local) as c:
            c.execute(f"create database {DBNAME}")
        with psycopg.connect(self.primary.dsn(DBNAME), autocommit=True, options=local) as c:
            _install.install_schema(c)
            ensure_test_worker_login(c)
        self.standby_dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.primary.os_user)
            os.chown(self.standby_dir, entry.pw_uid, entry.pw_gid)
        self._run(str(self.primary.bin_dir / "pg_basebackup"), "-D", str(self.standby_dir),
                  "-h", self.primary.host, "-p", str(self.primary.port), "-U", "postgres",
                  "-R", "-X", "stream", "-c", "fast")
        self.standby.start()
        self.wait_streaming()

    def wait_streaming(self) -> None:
        """Wait until the primary streams to the standby (synchronously, if so configured)."""
        want = "sync" if self.synchronous else "async"
        deadline = time.monotonic() + STREAM_TIMEOUT
        with psycopg.connect(self.primary.dsn(), autocommit=True) as c:
            while True:
                row = c.execute("select state, sync_state from pg_stat_replication").fetchone()
                if row is not None and row[0] == "streaming" and row[1] == want:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the standby is not streaming ({want}): {row}")
                time.sleep(0.05)

    def destroy(self) -> None:
        """Stop both servers and delete their data."""
        for server in (self.standby, self.primary):
            try:
                server.destroy()
            except Exception:  # noqa: BLE001, S110 - a killed primary cannot stop; delete anyway
                pass
            shutil.rmtree(server.data_dir, ignore_errors=True)

    # -- failover -----------------------------------------------------------------
    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster (no shutdown, no checkpoint)."""
        pid = self.primary.pid()
        assert pid is not None, "the primary is not running"
        os.kill(pid, signal.SIGKILL)

    def promote(self) -> None:
        """``pg_ctl promote -w`` the standby: it accepts writes when this returns."""
        self._run(str(self.standby.bin_dir / "pg_ctl"), "promote", "-w", "-t", "60",
                  "-D", str(self.standby_dir))

    # -- connection strings -------------------------------------------------------
    def multi_dsn(self, **params: Any) -> str:
        """Both servers in one libpq DSN; connections go to whichever accepts writes."""
        return make_conninfo(
            host=f"{self.primary.host},{self.standby.host}",
            port=f"{self.primary.port},{self.standby.port}",
            user="postgres", dbname=DBNAME, target_session_attrs="read-write",
            connect_timeout="2", **params)

    def _run(self, *args: str) -> None:
        argv = list(args)
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.primary.os_user, "--", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              cwd="/", env=env, timeout=120, check=False)
        assert proc.returncode == 0, f"{args[0]} failed ({proc.returncode}): {proc.stdout}" \
                                     f"{proc.stderr}"


@contextmanager
def replicated_pair(*, synchronous: bool) -> Iterator[ReplicatedPair]:
    """A started ``ReplicatedPair`` in a fresh directory, destroyed at the end."""
    kind = server_kind()
    root = short_tmp_dir("pgbatch-ha-")
    pair = ReplicatedPair(root, synchronous=synchronous, kind=kind)
    try:
        pair.start()
        yield pair
    finally:
        try:
            pair.destroy()
        finally:
            shutil.rmtree(root, ignore_errors=True)
