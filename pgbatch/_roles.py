"""The pgbatch group roles: their names, the SQL that sets them up, applying it.

Least privilege (docs/roles.md): applications never connect as the owner of
schema ``pgbatch``. Four NOLOGIN group roles carry the rights, and an
application's login role is granted one of them:

- ``pgbatch_producer``: enqueue, cancel, stats, ``kv_get``, the pure helpers;
- ``pgbatch_worker``: claim, settle, renew, reap, maintenance, node registry,
  and everything a producer may do (it is a member of producer);
- ``pgbatch_admin``: pause, resume, requeue, notify switch, read-only reports
  (SELECT on every table column except tokens), and everything a producer may do;
- ``pgbatch_viewer``: the read half of admin: every report (payloads and errors
  included) and the pure helpers, the same column SELECT, and no action at all
  (a member of no other role; ``pgbatch web --read-only`` needs nothing more).

The names live in ``pgbatch.meta`` (``role.producer``, ``role.worker``,
``role.admin``, ``role.viewer``); the session setting ``pgbatch.role_prefix`` read by
``pgbatch._apply_privileges()`` changes them (``myapp_`` gives
``myapp_producer``, ...), so two applications in one cluster (roles are
cluster-wide) keep separate roles. The SQL function does the work; this
module reads the names, applies it, and prints what a DBA runs when the
schema owner may not create roles.

Like the installer (``_install``) and the migration runner (``_migrate``),
this module sends SQL of its own: role DDL (``CREATE ROLE``, ``GRANT``) that
cannot be a function of a schema that may not be installed yet, and the
catalog reads that decide what to print or create.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

#: The kinds of group role, in the order of ``pgbatch._apply_privileges()``.
KINDS: Final = ("producer", "worker", "admin", "viewer")
#: Prefix of the default names (``pgbatch_producer``, ...).
DEFAULT_PREFIX: Final = "pgbatch_"
#: What ``pgbatch._apply_privileges()`` accepts as a prefix.
_PREFIX_RE: Final = re.compile(r"[a-z_][a-z0-9_]{0,49}")
#: The login role the CLI and the demo use on the embedded server.
EMBEDDED_LOGIN: Final = "pgbatch_app"


class RoleSetupError(Exception):
    """A role name or prefix that pgbatch refuses, or a kind that does not exist."""


@dataclass(frozen=True)
class RoleNames:
    """The names of the four group roles of one database."""

    producer: str
    worker: str
    admin: str
    viewer: str

    def of(self, kind: str) -> str:
        """The name of the role of ``kind`` (``producer``, ``worker``, ``admin`` or ``viewer``)."""
        if kind not in KINDS:
            raise RoleSetupError(f"unknown role kind {kind!r}: use one of {', '.join(KINDS)}")
        return str(getattr(self, kind))

    def all(self) -> tuple[str, str, str, str]:
        """``(producer, worker, admin, viewer)``."""
        return (self.producer, self.worker, self.admin, self.viewer)


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it makes valid role names, else raise ``RoleSetupError``."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise RoleSetupError(
            f"invalid role prefix {prefix!r}: lowercase letters, digits and underscores, "
            "starting with a letter or underscore, at most 50 characters")
    return prefix


def names_for_prefix(prefix: str = DEFAULT_PREFIX) -> RoleNames:
    """The role names a prefix gives (``pgbatch_`` gives ``pgbatch_producer``, ...)."""
    check_prefix(prefix)
    return RoleNames(*(prefix + kind for kind in KINDS))


def libpq_dsn(dsn: str) -> str:
    """A DSN psycopg accepts (a SQLAlchemy URL ``postgresql+psycopg://`` loses its driver)."""
    return re.sub(r"^postgres(ql)?\+[a-z0-9_]+://", "postgresql://", dsn)


def role_names(conn: psycopg.Connection[Any]) -> RoleNames:
    """The names recorded in ``pgbatch.meta`` (the defaults where a row is missing)."""
    rows = dict(conn.execute(
        "select key, value from pgbatch.meta where key = any(%s)",
        [[f"role.{k}" for k in KINDS]]).fetchall())
    default = names_for_prefix()
    return RoleNames(*(str(rows.get(f"role.{k}", default.of(k))) for k in KINDS))


def missing_roles(conn: psycopg.Connection[Any], names: RoleNames) -> list[str]:
    """Those of ``names`` that do not exist on the server."""
    found = {r[0] for r in conn.execute(
        "select rolname from pg_catalog.pg_roles where rolname = any(%s)",
        [list(names.all())]).fetchall()}
    return [n for n in names.all() if n not in found]


def _ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def _literal(value: str) -> str:
    return sql.Literal(value).as_string(None)


def setup_sql(names: RoleNames, grants: Sequence[tuple[str, str]] = (), *,
              create_logins: bool = False, prefix: str | None = None) -> str:
    """The SQL that creates the group roles, applies the privileges and grants logins.

    Args:
        names: The group role names.
        grants: ``(kind, login role)`` pairs: ``grant pgbatch_<kind> to <login>``.
        create_logins: Also create each login role (``LOGIN``, no password) if missing.
        prefix: The role prefix to record (``set pgbatch.role_prefix``), if not the default.

    Every statement is idempotent: the script may run again.
    """
    p, w, a, v = (_ident(n) for n in names.all())
    out = ["-- 1. As a superuser or a role with CREATEROLE: the NOLOGIN group roles."]
    for name in names.all():
        out.append(
            "do $pgbatch_roles$ begin\n"
            f"    if not exists (select from pg_catalog.pg_roles where rolname = {_literal(name)})"
            f" then\n        create role {_ident(name)} nologin;\n"
            "    end if;\nend $pgbatch_roles$;")
    out += [f"grant {p} to {w};  -- a worker may do what a producer may",
            f"grant {p} to {a};  -- so may an admin",
            f"-- ({v} is a member of none: it reads and acts on nothing)",
            "",
            "-- 2. As the owner of schema pgbatch (after `pgbatch migrate`): the grants.",
            "-- (`pgbatch migrate` runs this itself; run it again once the roles exist.)"]
    if prefix is not None and prefix != DEFAULT_PREFIX:
        out.append(f"set pgbatch.role_prefix = {_literal(prefix)};")
    out.append("select pgbatch._apply_privileges();")
    if grants:
        out += ["", "-- 3. As a role with CREATEROLE (or ADMIN on the group roles): "
                    "the application's login roles."]
        for kind, login in grants:
            if create_logins:
                out.append(
                    "do $pgbatch_roles$ begin\n"
                    "    if not exists (select from pg_catalog.pg_roles"
                    f" where rolname = {_literal(login)}) then\n"
                    f"        create role {_ident(login)} login;\n"
                    "    end if;\nend $pgbatch_roles$;")
            out.append(f"grant {_ident(names.of(kind))} to {_ident(login)};")
    else:
        out += ["", "-- 3. Then grant one group role to each application login role, e.g.:",
                f"--   grant {w} to app_worker;", f"--   grant {p} to app_web;",
                f"--   grant {a} to ops_user;", f"--   grant {v} to dashboard;"]
    return "\n".join(out) + "\n"


@contextmanager
def _collect_warnings(conn: psycopg.Connection[Any]) -> Iterator[list[str]]:
    found: list[str] = []

    def handler(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "WARNING" and diag.message_primary:
            found.append(diag.message_primary)

    conn.add_notice_handler(handler)
    try:
        yield found
    finally:
        conn.remove_notice_handler(handler)


def apply(conn: psycopg.Connection[Any], prefix: str | None = None) -> list[str]:
    """Run ``pgbatch._apply_privileges()`` on ``conn`` (as the schema owner).

    Creates the group roles when the connected role may, sets SECURITY
    DEFINER and the grants. ``prefix`` renames the roles first. Returns the
    warnings it raised (what it could not do, with the SQL a DBA runs).
    """
    with _collect_warnings(conn) as warnings, conn.transaction():
        if prefix is not None:
            conn.execute("select set_config('pgbatch.role_prefix', %s, true)",
                         [check_prefix(prefix)])
        conn.execute("select pgbatch._apply_privileges()")
    return warnings


def grant_login(conn: psycopg.Connection[Any], kind: str, login: str, *,
                create: bool = False, password: str | None = None) -> None:
    """Grant the group role of ``kind`` to ``login`` (created first if ``create`` and missing)."""
    names = role_names(conn)
    with conn.transaction():
        exists = conn.execute("select from pg_catalog.pg_roles where rolname = %s",
                              [login]).fetchone() is not None
        if not exists and create:
            stmt = sql.SQL("create role {} login").format(sql.Identifier(login))
            if password is not None:
                stmt = stmt + sql.SQL(" password {}").format(sql.Literal(password))
            conn.execute(stmt)
        member = conn.execute(
            "select from pg_catalog.pg_auth_members where roleid = %s::regrole"
            " and member = %s::regrole",
            [sql.Identifier(names.of(kind)).as_string(None),
             sql.Identifier(login).as_string(None)]).fetchone()
        if member is None:
            conn.execute(sql.SQL("grant {} to {}").format(
                sql.Identifier(names.of(kind)), sql.Identifier(login)))


def login_dsn(owner_dsn: str, kind: str = "worker", login: str = EMBEDDED_LOGIN) -> str:
    """A DSN like ``owner_dsn`` but as ``login``, a login role granted the group role ``kind``.

    For servers where the owner's DSN can create roles and connects without a
    password (the embedded server): creates ``login`` when missing. If the
    schema is not installed yet (no group roles), returns ``owner_dsn``
    unchanged, so that the caller's schema check asks for ``pgbatch migrate``.
    """
    from psycopg.conninfo import make_conninfo  # noqa: PLC0415

    with psycopg.connect(libpq_dsn(owner_dsn), autocommit=True, connect_timeout=10) as conn:
        if conn.execute("select to_regclass('pgbatch.meta')").fetchone() in (None, (None,)):
            return owner_dsn
        if missing_roles(conn, role_names(conn)):
            return owner_dsn
        grant_login(conn, kind, login, create=True)
    return make_conninfo(libpq_dsn(owner_dsn), user=login)
