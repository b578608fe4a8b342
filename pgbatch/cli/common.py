"""What every command module shares: argument types, parser helpers, connections.

A command module builds its subcommands with :func:`add_command` (which puts
``--dsn``, ``-v`` and ``-q`` on them, sets the help formatter and records the
parser for error messages) and connects with :func:`dsn_of` and
:func:`session`. Expected failures are raised as :class:`CliError`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, NoReturn, TypeAlias
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from pgbatch import _checks, _limits
from pgbatch._client import Client
from pgbatch._dsn import resolve_dsn
from pgbatch._pooler import POOLER_ENV, POOLER_MODES, PoolerMode, connection_kwargs, resolve_pooler
from pgbatch._types import Json
from pgbatch.cli.format import shorten

PROG: Final = "pgbatch"
#: Longest queue name the SQL API accepts (``pgbatch.limits()`` max_queue_name_length).
MAX_QUEUE_NAME: Final = _limits.MAX_QUEUE_NAME_LENGTH

#: What a command module's ``register`` receives: the parser's subcommand set
#: (``argparse._SubParsersAction``; argparse gives it no public name).
Commands: TypeAlias = Any
#: A command's handler: the parsed arguments in, the exit status out.
Handler: TypeAlias = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """An expected failure: printed as ``error: <message>``, exit ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------
# argument types
# ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def integer(text: str) -> int:
    """Any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def seconds(text: str) -> float:
    """A finite number of seconds, at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds, more than 0."""
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def json_value(text: str) -> Json:
    """Strict JSON (no NaN or Infinity)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at character {exc.pos}): {shorten(text, 60)!r}"
        ) from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {shorten(text, 60)!r}") from None


def json_object(text: str) -> dict[str, Json]:
    """A JSON object."""
    value = json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            "must be a JSON object like '{\"to\": \"a@example.com\"}', "
            f"got {shorten(text, 60)!r}")
    return value


def timestamp(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is local time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time like 2030-01-01T09:00:00+00:00: {text!r}") from None
    return value if value.tzinfo is not None else value.astimezone()  # naive = local time


def job_id(text: str) -> UUID:
    """A job id (a UUID)."""
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a job id (a UUID): {text!r}") from None


def check_queue_name(name: str) -> str:
    """Raise the library's ``InvalidQueueName`` for a name the SQL API would refuse.

    Enqueue, pause, ``jobs list`` and the other calls are checked by the SQL
    functions themselves; this check is for ``status --queue`` and
    ``worker --queue``, whose calls accept any text.
    """
    return _checks.check_queue_name(name)


# ---------------------------------------------------------------------------
# parsers
# ---------------------------------------------------------------------------


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks; shows defaults where they are set."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("%(default)" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


def add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--dsn, -v, -q: on the main parser and again on every command."""
    sup = argparse.SUPPRESS
    parser.add_argument(
        "--dsn", default=None if top else sup, metavar="DSN",
        help="PostgreSQL connection string (libpq keywords or postgresql:// URI); default "
             "$PGBATCH_DSN, else the embedded server")
    parser.add_argument(
        "--pooler", choices=POOLER_MODES, default=None if top else sup,
        help="'transaction' when DSN goes through a transaction pooler (PgBouncer "
             "pool_mode = transaction): no prepared statements, no LISTEN through it; "
             f"default ${POOLER_ENV}, else none")
    parser.add_argument("-v", "--verbose", action="count", default=0 if top else sup,
                        help="more output: DEBUG logs, tracebacks of errors")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if top else sup,
                        help="less output: warnings and errors only")


def add_command(commands: Commands, name: str, help_text: str, description: str,
                epilog: str | None = None, *, handler: Handler | None = None,
                common: bool = True, **kwargs: Any) -> argparse.ArgumentParser:
    """Add one (sub)command to ``commands`` and return its parser.

    ``help_text`` is the one-line summary in the parent's ``--help``;
    ``description`` and ``epilog`` (examples) head and end the command's own.
    ``handler`` runs the command; ``common`` adds ``--dsn``, ``-v``, ``-q``.
    """
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=description, epilog=epilog,
        formatter_class=Formatter, **kwargs)
    parser.set_defaults(parser=parser)
    if common:
        add_common(parser, top=False)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def add_group(commands: Commands, name: str, help_text: str, description: str,
              epilog: str | None = None) -> Commands:
    """Add a command group (``jobs``, ``queues``, ...) and return its subcommand set."""
    group = add_command(commands, name, help_text, description, epilog)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND",
                                title="subcommands", required=True)


# ---------------------------------------------------------------------------
# connections and logging
# ---------------------------------------------------------------------------


def dsn_of(args: argparse.Namespace) -> str:
    """``--dsn``, else ``$PGBATCH_DSN``, else the embedded server (started if needed)."""
    return resolve_dsn(args.dsn, announce=sys.stderr)


def pooler_of(args: argparse.Namespace) -> PoolerMode:
    """``--pooler``, else ``$PGBATCH_POOLER``, else ``"none"``."""
    return resolve_pooler(getattr(args, "pooler", None))


@contextmanager
def session(dsn: str, pooler: PoolerMode | None = None,
            ) -> Iterator[tuple[Client, psycopg.Connection[Any]]]:
    """One autocommit connection, and a ``Client`` whose calls all run on it.

    A plain connection fails at once with libpq's message when the server is
    unreachable (a pool would retry until its timeout). The client's own pool
    is never opened: every call passes ``conn=``. ``pooler``: the pooler mode
    (default ``$PGBATCH_POOLER``); ``"transaction"`` prepares no statements.
    """
    kwargs = connection_kwargs(resolve_pooler(pooler))
    with psycopg.connect(dsn, connect_timeout=10, **kwargs) as conn:
        pool: ConnectionPool[Any] = ConnectionPool(dsn, open=False)
        yield Client(pool), conn


def setup_logging(args: argparse.Namespace, default: int = logging.INFO) -> None:
    """Log to stderr: ``-v`` DEBUG, ``-q`` WARNING, else ``default``."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else default
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level, stream=sys.stderr,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S")
    logging.getLogger("pgbatch").setLevel(level)
    # alembic announces its context at INFO on every schema check
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
