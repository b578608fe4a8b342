"""``pgbatch migrate``: install or upgrade the schema, or print its SQL for a DBA."""

from __future__ import annotations

import argparse
import sys

from pgbatch.cli import roles
from pgbatch.cli.common import CliError, Commands, add_command, dsn_of


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the schema to head, or print the upgrade SQL."""
    from pgbatch import _migrate  # noqa: PLC0415 - alembic is slow to import

    if args.sql:
        sys.stdout.write(roles.offline_prelude(args))
        sys.stdout.write(_migrate.upgrade_sql(from_revision=args.from_revision))
        sys.stdout.write(roles.offline_epilogue(args))
        return 0
    if args.from_revision:
        raise CliError("--from-revision only applies with --sql", code=2)
    dsn = dsn_of(args)
    with roles.migrate_env(args):
        applied = _migrate.upgrade(dsn)
    if args.quiet:
        pass
    elif applied:
        for rev in applied:
            print(f"applied {rev}")
    else:
        print(f"already at {_migrate.head()}")
    roles.after_migrate(args, dsn)
    return 0


def register(commands: Commands) -> None:
    """Add ``migrate``."""
    p = add_command(
        commands, "migrate", "install or upgrade the pgbatch schema",
        "Upgrade the database's pgbatch schema to the newest version this pgbatch ships.\n"
        "Idempotent, and safe from many processes at once (an advisory lock serialises\n"
        "them). With --sql, print the SQL instead, for a DBA to apply with psql.\n"
        "-q prints nothing on success. From Python: pgbatch.migrate(dsn).",
        "examples:\n"
        "  pgbatch migrate\n"
        "  pgbatch migrate --sql > pgbatch-upgrade.sql\n"
        "  psql -v ON_ERROR_STOP=1 -d appdb -f pgbatch-upgrade.sql\n"
        "  pgbatch migrate --sql --from-revision 0001_initial   # only later versions",
        handler=cmd_migrate)
    p.add_argument("--sql", action="store_true",
                   help="print the upgrade script instead of applying it (no connection made)")
    p.add_argument("--from-revision", metavar="REV",
                   help="with --sql: the database's current revision "
                        "(select version_num from pgbatch.alembic_version); "
                        "print only the versions after it")
    roles.add_migrate_options(p)
