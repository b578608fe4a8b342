"""A real PgBouncer in transaction-pooling mode in front of the test server.

Tests of the pooler mode (``tests/test_pooler.py``) start one per test module
with :func:`start_pgbouncer`. PgBouncer refuses to run as root, so as root it
runs through ``runuser -u postgres`` (the Debian ``postgres`` user exists
wherever the system PostgreSQL is installed); its files live in a fresh
directory that user can write.

The pooler authenticates nobody (``auth_type = trust``): it is a loopback-only
test fixture, like the test server itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
OS_USER = "postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PgBouncer:
    """A running PgBouncer; :meth:`dsn` rewrites a server DSN to go through it."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    admin_user: str

    def dsn(self, server_dsn: str) -> str:
        """``server_dsn`` (a libpq keyword string) pointed at the pooler instead."""
        params = conninfo_to_dict(server_dsn)
        params.update(host="127.0.0.1", port=str(self.port))
        return make_conninfo(**{k: str(v) for k, v in params.items()})

    def disconnect(self, dbname: str) -> None:
        """Close every client and server connection the pooler holds for ``dbname``.

        Through the admin console (``KILL`` then ``RESUME``): a test's database
        then has no idle pooled server connection left when its leak check
        counts the backends connected to it.
        """
        admin = make_conninfo(host="127.0.0.1", port=str(self.port), dbname="pgbouncer",
                              user=self.admin_user)
        with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as c:
            for command in (f"KILL {dbname}", f"RESUME {dbname}"):
                result = c.pgconn.exec_(command.encode())  # the console speaks simple queries only
                if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                    message = (result.error_message or b"").decode(errors="replace")
                    raise RuntimeError(f"pgbouncer {command}: {message}")

    def log(self) -> str:
        """What PgBouncer logged so far."""
        path = self.directory / "pgbouncer.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop PgBouncer (SIGTERM, then SIGKILL) and delete its directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def available() -> bool:
    """Whether a PgBouncer binary is installed.

    With ``PGBATCH_TEST_REQUIRE_PGBOUNCER=1`` (set by ``.ci/run``) a missing
    binary is an error rather than a reason to skip the pooler tests.
    """
    if os.path.exists(PGBOUNCER):
        return True
    if os.environ.get("PGBATCH_TEST_REQUIRE_PGBOUNCER") == "1":
        raise RuntimeError(f"pgbouncer not found at {PGBOUNCER} (apt-get install pgbouncer)")
    return False


def start_pgbouncer(server_dsn: str, *, pool_size: int = 20,
                    users: Sequence[str] = ()) -> PgBouncer:
    """Start PgBouncer in ``pool_mode = transaction`` in front of ``server_dsn``'s server.

    Every database name is forwarded (``* = ...``) to the same host and port.
    The pooler admits ``server_dsn``'s user and ``users`` (e.g. the tests'
    worker login). Returns once a connection through the pooler answers
    ``select 1``.
    """
    target = conninfo_to_dict(server_dsn)
    directory = Path(tempfile.mkdtemp(prefix="pgbatch-pgbouncer-", dir="/tmp"))
    port = _free_port()
    host = str(target.get("host") or "127.0.0.1")
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={host} port={target.get('port', '5432')}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"admin_users = {target.get('user', 'postgres')}\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        # Server connections are not reset between clients in transaction mode;
        # keep them around long enough that a leaked session state would show.
        "server_idle_timeout = 600\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
        f"pidfile = {directory / 'pgbouncer.pid'}\n",
        encoding="utf-8",
    )
    names = dict.fromkeys([str(target.get("user", "postgres")), *users])
    (directory / "users.txt").write_text("".join(f'"{name}" ""\n' for name in names))
    command = [PGBOUNCER, str(config)]
    if os.geteuid() == 0:
        shutil.chown(directory, user=OS_USER)
        for child in directory.iterdir():
            shutil.chown(child, user=OS_USER)
        command = ["runuser", "-u", OS_USER, "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bouncer = PgBouncer(port=port, directory=directory, process=process,
                        admin_user=str(target.get("user", "postgres")))
    dsn = bouncer.dsn(server_dsn)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            log = bouncer.log()
            bouncer.stop()
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {err}{log}")
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=2,
                                 prepare_threshold=None) as c:
                c.execute("select 1")
            return bouncer
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                bouncer.stop()
                raise
            time.sleep(0.05)  # polling the pooler's port until it accepts: not synchronisation
