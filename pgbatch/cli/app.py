"""The ``pgbatch`` parser assembly and ``main``: exit codes and error lines.

:data:`COMMAND_MODULES` lists every command group's ``register`` function in
``--help`` order; :func:`build_parser` calls each on the top-level subcommand
set. :func:`main` parses, runs the chosen handler and turns the expected
errors into one ``error: ...`` line and an exit status.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import psycopg

from pgbatch._errors import JobNotFound, PgBatchError
from pgbatch.cli import (
    bench,
    demo,
    enqueue,
    jobs,
    migrate,
    queues,
    roles,
    runs,
    schedules,
    server,
    status,
    web,
    worker,
)
from pgbatch.cli.common import PROG, CliError, Commands, Formatter, add_common

#: A command module's registration function: adds its (sub)commands.
Register = Callable[[Commands], None]

#: Every command group, in ``pgbatch --help`` order. A new group is a new
#: module with a ``register(commands)`` function, listed here.
COMMAND_MODULES: Final[tuple[Register, ...]] = (
    migrate.register,
    roles.register,
    worker.register,
    enqueue.register,
    status.register,
    jobs.register,
    runs.register,
    queues.register,
    schedules.register,
    server.register,
    web.register,
    demo.register,
    bench.register,
)

#: SQLSTATEs meaning "the pgbatch schema is not installed here".
_NO_SCHEMA_STATES: Final = frozenset({"3F000", "42P01", "42883"})

DESCRIPTION = """\
pgbatch: a PostgreSQL-native job queue.

Connects to --dsn, else $PGBATCH_DSN, else the embedded PostgreSQL server kept
in your user data directory (started on first use; see `pgbatch server`).
Run `pgbatch COMMAND --help` for a command's options."""

EPILOG = """\
examples:
  pgbatch demo                                 # a worker and 500 jobs on the embedded server
  export PGBATCH_DSN=postgresql://app@db/app
  pgbatch migrate                              # install or upgrade the schema
  pgbatch worker --app myproject.tasks:app --concurrency 8
  pgbatch enqueue emails '{"to": "a@example.com"}'
  pgbatch status
  pgbatch jobs list --state dead
  pgbatch runs list --status FAILED               # batch job executions"""


def build_parser(extra: Iterable[Register] = ()) -> argparse.ArgumentParser:
    """The ``pgbatch`` argument parser: every command of :data:`COMMAND_MODULES`, then ``extra``."""
    from pgbatch import __version__  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"pgbatch {__version__}")
    add_common(parser, top=True)
    parser.set_defaults(parser=parser, handler=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for register in (*COMMAND_MODULES, *extra):
        register(commands)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(message: str, args: argparse.Namespace | None) -> None:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    if args is not None and args.verbose:
        traceback.print_exc()


def _db_message(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary if exc.sqlstate else None
    message = _one_line(primary or str(exc)) or type(exc).__name__
    if exc.sqlstate in _NO_SCHEMA_STATES and "pgbatch" in message:
        return f"{message}: is the pgbatch schema installed? run `pgbatch migrate`"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (never raises SystemExit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        pass_through = getattr(args, "pass_through", None)
        if pass_through is not None:  # `bench`: the rest of the line is its own
            return _run(lambda: int(pass_through(args, extra)), args)
        if extra:
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.handler is None:
            parser.print_help()
            return 2
    except SystemExit as exc:
        return _exit_code(exc)
    return _run(lambda: int(args.handler(args)), args)


def _run(call: Callable[[], int], args: argparse.Namespace) -> int:
    """Run a command, turning expected errors into one ``error:`` line and an exit status."""
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    from pgbatch import WorkerError  # noqa: PLC0415
    from pgbatch.embedded import ServerError  # noqa: PLC0415

    levels = {name: logging.getLogger(name).level for name in ("pgbatch", "alembic")}
    env_dsn = os.environ.get("PGBATCH_DSN")  # `worker` sets it for the App it imports
    try:
        return call()
    except CliError as exc:
        if exc.code == 2 and args.parser is not None:
            args.parser.print_usage(sys.stderr)
        _error(str(exc), args)
        return exc.code
    except JobNotFound as exc:
        _error(exc.message, args)
        return 1
    except PgBatchError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        _error(f"{exc}{detail}", args)
        return 1
    except WorkerError as exc:
        _error(str(exc), args)
        return 1
    except psycopg.Error as exc:
        _error(_db_message(exc), args)
        return 1
    except DBAPIError as exc:
        orig = exc.orig
        _error(_db_message(orig) if isinstance(orig, psycopg.Error) else str(orig), args)
        return 1
    except ServerError as exc:
        first, _, rest = str(exc).partition("\n")
        _error(first + (" (run with -v for the server's output)" if rest else ""), args)
        if rest and args.verbose:
            print(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`pgbatch jobs list | head`): stop quietly
        _silence_stdout()
        return 141
    except Exception as exc:
        from alembic.util import CommandError  # noqa: PLC0415

        if isinstance(exc, CommandError):
            _error(str(exc), args)
            return 1
        raise
    finally:
        # main() may run in a longer-lived process (tests, an embedding program)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if env_dsn is None:
            os.environ.pop("PGBATCH_DSN", None)
        else:
            os.environ["PGBATCH_DSN"] = env_dsn
