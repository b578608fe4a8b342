"""``pgbatch roles``: the SQL that sets up the least-privilege roles, and applying it.

Also the role-related parts of other commands: ``migrate --role-prefix`` and
the report of roles a migration could not create, and the login role the
``worker`` and ``demo`` commands use on the embedded server (they never run
as the schema owner there). See docs/roles.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from pgbatch import _roles
from pgbatch.cli.common import Commands, add_command, dsn_of

DESCRIPTION = """\
Print the SQL that sets up pgbatch's least-privilege roles, or apply it.

Four NOLOGIN group roles carry the rights; each application login role is
granted one of them:
  pgbatch_producer  enqueue, enqueue_many, cancel_job, queue_stats, kv_get
  pgbatch_worker    claim, settle, renew, reap, maintenance; includes producer
  pgbatch_admin     pause, resume, requeue, set_queue_notify, read-only
                    reports; includes producer
  pgbatch_viewer    the read-only reports only (jobs with payloads and errors,
                    queues, nodes, metrics, runs, approvals, schedules): for
                    `pgbatch web --read-only` and the CLI's read commands
`pgbatch migrate` creates the group roles when its role may (superuser or
CREATEROLE); otherwise a DBA runs the SQL printed here. With --apply, run it
on the database (as the schema owner; creating roles needs CREATEROLE)."""

EPILOG = """\
examples:
  pgbatch roles                                   # print the SQL for a DBA
  pgbatch roles --worker app_worker --producer app_web
  pgbatch roles --apply --worker app_worker       # grant pgbatch_worker to app_worker
  pgbatch roles --apply --create-logins --worker app_worker   # also create the login
  pgbatch roles --apply --create-logins --viewer dashboard    # a read-only dashboard login
  pgbatch roles --role-prefix myapp_ --apply      # myapp_producer, myapp_worker, ...

Applications connect as their login role, never as the schema owner."""


def register(commands: Commands) -> None:
    """Add ``roles``."""
    p = add_command(commands, "roles", "print or apply the SQL of the least-privilege roles",
                    DESCRIPTION, EPILOG, handler=cmd_roles)
    p.add_argument("--apply", action="store_true",
                   help="run it on the database instead of printing it (as the schema owner)")
    p.add_argument("--role-prefix", metavar="PREFIX", type=_prefix,
                   help="name the group roles PREFIXproducer, PREFIXworker, PREFIXadmin, "
                        f"PREFIXviewer (default {_roles.DEFAULT_PREFIX}; with --apply, "
                        "renames them)")
    for kind in _roles.KINDS:
        p.add_argument(f"--{kind}", action="append", default=[], metavar="LOGIN",
                       help=f"grant the {kind} group role to login role LOGIN (repeatable)")
    p.add_argument("--create-logins", action="store_true",
                   help="also create the login roles named by --producer/--worker/--admin/"
                        "--viewer "
                        "when missing (password: $PGBATCH_LOGIN_PASSWORD, if set)")


def _prefix(text: str) -> str:
    try:
        return _roles.check_prefix(text)
    except _roles.RoleSetupError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _grants(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(kind, login) for kind in _roles.KINDS for login in getattr(args, kind)]


def cmd_roles(args: argparse.Namespace) -> int:
    """Print the role setup SQL, or apply it with ``--apply``."""
    grants = _grants(args)
    if not args.apply:
        names = _roles.names_for_prefix(args.role_prefix or _roles.DEFAULT_PREFIX)
        sys.stdout.write(_roles.setup_sql(names, grants, create_logins=args.create_logins,
                                          prefix=args.role_prefix))
        return 0
    dsn = dsn_of(args)
    with psycopg.connect(_roles.libpq_dsn(dsn), autocommit=True, connect_timeout=10) as conn:
        warnings = _roles.apply(conn, args.role_prefix)
        names = _roles.role_names(conn)
        missing = _roles.missing_roles(conn, names)
        if missing:
            _report_missing(names, missing, warnings, args.role_prefix)
            return 1
        for kind, login in grants:
            _roles.grant_login(conn, kind, login, create=args.create_logins,
                               password=os.environ.get("PGBATCH_LOGIN_PASSWORD"))
            print(f"granted {names.of(kind)} to {login}")
    print(f"roles {', '.join(names.all())}: privileges applied")
    return 0


def _report_missing(names: _roles.RoleNames, missing: list[str], warnings: list[str],
                    prefix: str | None) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"pgbatch: the group role(s) {', '.join(missing)} do not exist and this role may "
          "not create them. A DBA runs (psql -v ON_ERROR_STOP=1):\n", file=sys.stderr)
    print(_roles.setup_sql(names, prefix=prefix), file=sys.stderr)


# -- hooks of other commands ---------------------------------------------------------------

def add_migrate_options(parser: argparse.ArgumentParser) -> None:
    """``migrate --role-prefix``."""
    parser.add_argument("--role-prefix", metavar="PREFIX", type=_prefix,
                        help="name the group roles PREFIXproducer, PREFIXworker, PREFIXadmin, "
                             f"PREFIXviewer (default {_roles.DEFAULT_PREFIX}; see `pgbatch roles`)")


def offline_prelude(args: argparse.Namespace) -> str:
    """What ``migrate --sql`` prints before alembic's script (the role prefix, if any)."""
    prefix = getattr(args, "role_prefix", None)
    if prefix is None:
        return ""
    return f"set pgbatch.role_prefix = {psycopg.sql.Literal(prefix).as_string(None)};\n"


def offline_epilogue(args: argparse.Namespace) -> str:
    """What ``migrate --sql`` prints after the script: the role SQL, as comments."""
    names = _roles.names_for_prefix(getattr(args, "role_prefix", None) or _roles.DEFAULT_PREFIX)
    body = _roles.setup_sql(names, prefix=getattr(args, "role_prefix", None))
    return ("\n-- The script above creates the pgbatch group roles if the role running it may\n"
            "-- (superuser or CREATEROLE). Otherwise a DBA first runs:\n"
            + "".join(f"--   {line}\n" if line else "--\n" for line in body.splitlines()))


@contextmanager
def migrate_env(args: argparse.Namespace) -> Iterator[None]:
    """Pass ``--role-prefix`` to the migration's connection (libpq ``PGOPTIONS``)."""
    prefix = getattr(args, "role_prefix", None)
    if prefix is None:
        yield
        return
    before = os.environ.get("PGOPTIONS")
    os.environ["PGOPTIONS"] = f"{before or ''} -c pgbatch.role_prefix={prefix}".strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PGOPTIONS", None)
        else:
            os.environ["PGOPTIONS"] = before


def after_migrate(args: argparse.Namespace, dsn: str) -> None:
    """After ``migrate``: apply a new role prefix, and print the DBA SQL for missing roles."""
    with psycopg.connect(_roles.libpq_dsn(dsn), autocommit=True, connect_timeout=10) as conn:
        prefix = getattr(args, "role_prefix", None)
        warnings: list[str] = []
        if prefix is not None and _roles.role_names(conn) != _roles.names_for_prefix(prefix):
            warnings = _roles.apply(conn, prefix)
        names = _roles.role_names(conn)
        missing = _roles.missing_roles(conn, names)
        if missing:
            _report_missing(names, missing, warnings, prefix)


def embedded_login_dsn(args: argparse.Namespace) -> str | None:
    """With no --dsn nor $PGBATCH_DSN: the embedded server as a ``pgbatch_worker`` login.

    The login role ``pgbatch_app`` is created on first use. ``None`` when a
    DSN was given (the user's own login role is used as given).
    """
    if args.dsn or os.environ.get("PGBATCH_DSN"):
        return None
    return _roles.login_dsn(dsn_of(args), "worker")
