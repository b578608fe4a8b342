"""Where pgbatch connects when it is not told: the one rule, for ``App`` and the CLI.

``dsn`` when given, else ``$PGBATCH_DSN``, else the embedded PostgreSQL server
in the user's data directory (:func:`pgbatch.embedded.default_server`),
started on first use and left running.
"""

from __future__ import annotations

import os
from typing import TextIO

#: The environment variable that names the database when no DSN is given.
DSN_ENV = "PGBATCH_DSN"


def resolve_dsn(dsn: str | None = None, *, announce: TextIO | None = None) -> str:
    """``dsn``, else ``$PGBATCH_DSN``, else the embedded server's (started if needed).

    ``announce``: a stream told, in one line, that the embedded server is being
    started (the CLI passes stderr); nothing is written when it already runs.
    """
    if dsn:
        return dsn
    env = os.environ.get(DSN_ENV)
    if env:
        return env
    from pgbatch.embedded import PgServer, default_data_dir, default_server  # noqa: PLC0415

    if announce is not None and not PgServer.embedded(default_data_dir()).is_running():
        print(f"pgbatch: no --dsn or {DSN_ENV}: starting the embedded PostgreSQL server "
              f"(data in {default_data_dir()})", file=announce)
    return default_server().dsn()
