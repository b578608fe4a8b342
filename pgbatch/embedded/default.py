"""The embedded server the CLI, ``App`` and ``resolve_dsn`` use when given no DSN."""

from __future__ import annotations

from pathlib import Path

import platformdirs

from pgbatch.embedded.host import file_lock
from pgbatch.embedded.server import PgServer


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
    with file_lock(data_dir.parent / "pg-embedded.lock"):
        server.start()
    return server
