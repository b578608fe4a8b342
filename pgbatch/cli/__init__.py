"""The ``pgbatch`` command line (argparse, standard library only).

Where it connects, for every command that needs a database: ``--dsn``
(accepted before or after the command name), else ``$PGBATCH_DSN``, else
the embedded PostgreSQL server in the user's data directory, started on
first use and left running (``pgbatch server status|start|stop``).

Every call goes through the SQL API (the ``Client``): no SQL is written here.

Exit codes: 0 success; 1 an expected error, printed as one ``error: …``
line on stderr (pgbatch errors, connection failures, unknown job ids, a
missing schema); 2 bad usage (argparse); 3 ``server status`` of a server
that is not running; 130 interrupted. ``-v`` adds the traceback to errors.

How the package is organised
----------------------------

One module per command group, each with a ``register(commands)`` function
that adds its (sub)commands to the top-level subcommand set:

- :mod:`~pgbatch.cli.migrate`, :mod:`~pgbatch.cli.worker`,
  :mod:`~pgbatch.cli.enqueue`, :mod:`~pgbatch.cli.status`,
  :mod:`~pgbatch.cli.jobs`, :mod:`~pgbatch.cli.queues`,
  :mod:`~pgbatch.cli.server`, :mod:`~pgbatch.cli.demo`,
  :mod:`~pgbatch.cli.bench`: the commands;
- :mod:`~pgbatch.cli.common`: argument types, ``add_command``/``add_group``,
  ``dsn_of``, ``session``, ``CliError``; :mod:`~pgbatch.cli.format`: tables,
  durations and ``--json`` output;
- :mod:`~pgbatch.cli.app`: ``COMMAND_MODULES`` (the list of ``register``
  functions, in ``--help`` order), ``build_parser`` and ``main``.

Adding a command group (``runs``, ``schedules``, ``roles``, ...) is a new
module and one line in ``COMMAND_MODULES``::

    # pgbatch/cli/roles.py
    from pgbatch.cli.common import Commands, add_command, add_group, dsn_of, pooler_of, session

    def cmd_roles_list(args: argparse.Namespace) -> int:
        with session(dsn_of(args), pooler_of(args)) as (client, conn):
            ...
        return 0

    def register(commands: Commands) -> None:
        group = add_group(commands, "roles", "one-line help", "Description.")
        p = add_command(group, "list", "one-line help", "Description.",
                        "examples:\\n  pgbatch roles list", handler=cmd_roles_list)
        p.add_argument("--json", action="store_true", help="JSON instead of a table")

``add_command`` gives every (sub)command ``--dsn``, ``-v`` and ``-q`` and the
help formatter; a handler takes the parsed arguments and returns the exit
status, raising ``CliError`` (or a pgbatch error) for an expected failure.
A program embedding the CLI may also pass extra ``register`` functions to
``build_parser(extra=...)``.
"""

from pgbatch.cli.app import COMMAND_MODULES, Register, build_parser, main
from pgbatch.cli.common import CliError

__all__ = ["COMMAND_MODULES", "CliError", "Register", "build_parser", "main"]
