"""The files of one cluster's data directory, and who owns them.

:class:`DataDir` is the state half of :class:`pgbatch.embedded.server.PgServer`:
paths, the port kept in ``pgbatch-port``, the settings written to
``pgbatch.conf``, ``postmaster.pid`` (is it running, on which port), the Unix
socket directory, and file ownership when this process is root (the server
then runs as another OS user). It runs no program; the server adds the
``initdb``/``pg_ctl`` calls.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from psycopg.conninfo import make_conninfo

from pgbatch.embedded.binaries import ServerError
from pgbatch.embedded.host import HOST, make_parents_traversable, pick_free_port, process_alive

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

_SUN_PATH_MAX: Final = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_SOCKET_NAME_MAX: Final = len("/.s.PGSQL.65535")


class DataDir:
    """A cluster's data directory: its files, port, settings and owner."""

    def __init__(self, data_dir: Path, *, port: int | None, settings: Mapping[str, str] | None,
                 os_user: str) -> None:
        """Describe the directory; nothing is created until the server needs it."""
        self.data_dir: Final = Path(data_dir).absolute()
        self.settings: Final[dict[str, str]] = dict(settings or {})
        self._port_explicit: Final = port is not None
        self._port: int | None = port
        self.os_user: Final = os_user
        self._as_root: Final = os.geteuid() == 0

    # ------------------------------------------------------------------ properties

    @property
    def host(self) -> str:
        """The address the server listens on: always ``127.0.0.1``."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port: given, persisted in the data directory, or newly chosen."""
        if self._port is None:
            self._port = self._read_port_file() or pick_free_port()
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
        return pid if process_alive(pid) else None

    def is_running(self) -> bool:
        """Return whether a postmaster is running on the data directory.

        This reads ``postmaster.pid`` and checks that its process is alive; a stale file
        left behind by a crash does not count.
        """
        return self.pid() is not None

    def dsn(self, dbname: str = "postgres") -> str:
        """Return a libpq keyword connection string for ``dbname`` as superuser ``postgres``."""
        return make_conninfo(host=HOST, port=str(self.port), user=SUPERUSER, dbname=dbname)

    # ------------------------------------------------------------------ files

    def _uid_gid(self) -> tuple[int, int] | None:
        """Return the server user's uid and gid when running as root, else ``None``."""
        if not self._as_root:
            return None
        entry = pwd.getpwnam(self.os_user)
        return entry.pw_uid, entry.pw_gid

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` if missing and make it usable by the server's user."""
        path.mkdir(parents=True, exist_ok=True)
        ids = self._uid_gid()
        if ids is None:
            return
        make_parents_traversable(path)
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
