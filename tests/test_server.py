"""Tests of pgbatch.embedded.PgServer against real PostgreSQL servers (no mocks).

Each test starts its own throwaway cluster in a fresh directory under /tmp and
destroys it afterwards, whatever the outcome.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pgbatch.embedded import PgServer, ServerError, default_data_dir, default_server

from .conftest import PgTestServer, short_tmp_dir

MakeServer = Callable[..., PgServer]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh short directory under /tmp, removed after the test."""
    path = short_tmp_dir("pgbatch-srv-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_server(workdir: Path) -> Iterator[MakeServer]:
    """Build PgServer objects in ``workdir``; every one is destroyed at teardown."""
    made: list[PgServer] = []

    def make(kind: str = "embedded", name: str = "data", **kw: object) -> PgServer:
        factory = PgServer.system if kind == "system" else PgServer.embedded
        server = factory(workdir / name, **kw)  # type: ignore[arg-type]
        made.append(server)
        return server

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for server in made:
            try:
                server.destroy()
            except Exception as exc:  # noqa: BLE001 - clean up every server, report the first error
                errors.append(exc)
        if errors:
            raise errors[0]


def _scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_embedded_server_starts(make_server: MakeServer) -> None:
    server = make_server()
    assert not server.is_running()
    assert server.pid() is None
    server.start()
    assert server.is_running()
    pid = server.pid()
    assert pid is not None

    version = _scalar(server.dsn(), "select version()")
    assert isinstance(version, str)
    assert version.startswith("PostgreSQL ")
    assert server.server_version_num() >= 150000

    settings = {
        name: _scalar(server.dsn(), f"select current_setting('{name}')")
        for name in ("max_connections", "listen_addresses", "fsync", "max_locks_per_transaction")
    }
    assert settings == {
        "max_connections": "300",
        "listen_addresses": "127.0.0.1",
        "fsync": "on",
        "max_locks_per_transaction": "256",
    }
    assert _scalar(server.dsn(), "select current_user") == "postgres"

    server.start()  # idempotent: the same postmaster keeps running
    assert server.pid() == pid

    server.stop()
    assert not server.is_running()
    server.stop()  # stopping a stopped server is a no-op


def test_restart_immediate_keeps_committed_rows(make_server: MakeServer) -> None:
    server = make_server()
    server.start()
    pid_before = server.pid()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("create table t (x int)")
        conn.execute("insert into t values (1)")
    pending = psycopg.connect(server.dsn())
    try:
        pending.execute("insert into t values (2)")  # never committed

        server.restart("immediate")
    finally:
        pending.close()

    assert server.is_running()
    assert server.pid() != pid_before
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        rows = conn.execute("select x from t order by x").fetchall()
    assert rows == [(1,)]
    assert "automatic recovery in progress" in server.log_file.read_text()


def test_port_persists_across_stop_and_start(make_server: MakeServer, workdir: Path) -> None:
    first = make_server()
    first.start()
    port = first.port
    assert (workdir / "data" / "pgbatch-port").read_text().strip() == str(port)
    first.stop()
    assert not first.is_running()

    second = make_server()  # a new object on the same data directory
    second.start()
    assert second.port == port
    assert _scalar(second.dsn(), "select current_setting('port')") == str(port)


def test_settings_override_and_start_failure(make_server: MakeServer) -> None:
    # A path too long for a Unix socket inside the data directory.
    name = "d" * 100
    server = make_server(name=name, settings={"max_connections": "40"})
    server.start()
    assert server.socket_dir != server.data_dir
    assert _scalar(server.dsn(), "select current_setting('max_connections')") == "40"
    assert _scalar(server.dsn(), "select current_setting('unix_socket_directories')") == str(
        server.socket_dir
    )
    server.stop()

    broken = make_server(name=name, settings={"shared_buffers": "plenty"})
    with pytest.raises(ServerError, match="shared_buffers") as excinfo:
        broken.start()
    assert "last lines of" in str(excinfo.value)
    assert not broken.is_running()

    server.start()  # the good settings are written again
    assert server.is_running()


def test_system_server_starts(make_server: MakeServer) -> None:
    if shutil.which("initdb") is None:
        pytest.skip("no initdb on PATH")
    server = make_server("system")
    server.start()
    assert (server.bin_dir / "pg_ctl").is_file()
    assert server.server_version_num() >= 150000
    assert _scalar(server.dsn(), "select 1 + 1") == 2


def test_default_server_is_persistent(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(workdir / "xdg"))
    assert default_data_dir() == workdir / "xdg" / "pgbatch" / "pg-embedded"
    server = default_server()
    try:
        assert server.data_dir == default_data_dir()
        assert server.is_running()
        again = default_server()  # already running: returned as is
        assert (again.port, again.pid()) == (server.port, server.pid())
    finally:
        server.destroy()


def test_session_server_fixture(pg_server: PgTestServer) -> None:
    assert _scalar(pg_server.admin_dsn(), "select current_database()") == "postgres"
    assert _scalar(pg_server.admin_dsn("template1"), "select current_database()") == "template1"
