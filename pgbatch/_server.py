"""The embedded server's former module: everything now lives in :mod:`pgbatch.embedded`.

Kept so that ``from pgbatch._server import PgServer`` keeps working.
"""

from pgbatch.embedded import (
    DEFAULT_SETTINGS,
    HOST,
    SUPERUSER,
    PgServer,
    ServerError,
    default_data_dir,
    default_server,
    embedded_bin_dir,
    system_bin_dir,
)

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
