"""The warning when a server streams to standbys but commits do not wait for them.

Real standbys (``tests/replication.py``): with ``synchronous_standby_names``
empty, ``pgbatch status`` prints a ``warning:`` line on stderr and a worker
logs one WARNING when it opens its connections; with a synchronous standby,
neither does; a server without standbys never warns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import psycopg
import pytest

from pgbatch._replication import ReplicationState
from pgbatch.cli.app import main as cli_main
from pgbatch.worker.connections import WorkerConnections
from tests.conftest import TestDatabase
from tests.replication import ReplicatedPair, replicated_pair


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicatedPair]:
    """A primary streaming to a standby (asynchronously unless a test makes it synchronous)."""
    with replicated_pair(synchronous=False) as pair:
        yield pair


@pytest.fixture
def async_pair(pair: ReplicatedPair) -> ReplicatedPair:
    """The pair, its primary not waiting for the standby."""
    set_synchronous(pair, False)
    return pair


@pytest.fixture
def sync_pair(pair: ReplicatedPair) -> Iterator[ReplicatedPair]:
    """The pair, its primary waiting for the standby (synchronous_standby_names = '*')."""
    set_synchronous(pair, True)
    try:
        yield pair
    finally:
        set_synchronous(pair, False)


def set_synchronous(pair: ReplicatedPair, synchronous: bool) -> None:
    """ALTER SYSTEM synchronous_standby_names on the primary, reload, wait for the standby."""
    with psycopg.connect(pair.primary.dsn(), autocommit=True,
                         options="-c synchronous_commit=local") as c:
        c.execute(f"alter system set synchronous_standby_names = '{'*' if synchronous else ''}'")
        c.execute("select pg_reload_conf()")
    pair.synchronous = synchronous
    pair.wait_streaming()


def status_stderr(dsn: str, capsys: pytest.CaptureFixture[str]) -> str:
    """stderr of ``pgbatch status --dsn DSN`` (exit status 0 checked)."""
    capsys.readouterr()
    assert cli_main(["status", "--dsn", dsn]) == 0
    return capsys.readouterr().err


def worker_warnings(dsn: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """WARNING lines of pgbatch.worker while a worker's connections open."""
    async def main() -> None:
        connections = WorkerConnections(dsn, 1)
        try:
            await connections.open()
        finally:
            await connections.close()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pgbatch.worker"):
        asyncio.run(main())
    return [r.getMessage() for r in caplog.records
            if r.name == "pgbatch.worker" and r.levelno == logging.WARNING]


def test_asynchronous_standby_warns_in_status_and_at_worker_start(
        async_pair: ReplicatedPair, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Streaming, synchronous_standby_names empty: one warning line in each place."""
    dsn = async_pair.primary.dsn("pgbatch")
    err = status_stderr(dsn, capsys)
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1, err
    assert "streams to 1 standby" in lines[0]
    assert "synchronous_standby_names is empty" in lines[0]
    warnings = worker_warnings(dsn, caplog)
    assert len(warnings) == 1, warnings
    assert "commits do not wait" in warnings[0]


def test_synchronous_commit_off_for_the_role_warns(
        sync_pair: ReplicatedPair, capsys: pytest.CaptureFixture[str]) -> None:
    """A synchronous standby, but this DSN commits with synchronous_commit=local: warned."""
    dsn = sync_pair.primary.dsn("pgbatch") + " options='-c synchronous_commit=local'"
    err = status_stderr(dsn, capsys)
    assert "warning:" in err, err
    assert "synchronous_commit = local" in err, err


def test_synchronous_standby_does_not_warn(
        sync_pair: ReplicatedPair, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """synchronous_standby_names = '*', synchronous_commit = on: no warning anywhere."""
    dsn = sync_pair.primary.dsn("pgbatch")
    assert "warning:" not in status_stderr(dsn, capsys)
    assert worker_warnings(dsn, caplog) == []


def test_no_standby_no_warning(db: TestDatabase, capsys: pytest.CaptureFixture[str]) -> None:
    """The session's server streams to nobody: nothing to warn about."""
    assert "warning:" not in status_stderr(db.dsn, capsys)


def test_state_rules() -> None:
    """Which settings make commits wait (the rule the warning applies)."""
    assert ReplicationState(0, "", "off").warning is None
    assert ReplicationState(2, "*", "on").warning is None
    assert ReplicationState(1, "ANY 1 (s1, s2)", "remote_apply").warning is None
    assert ReplicationState(1, " ", "on").warning is not None
    off = ReplicationState(3, "*", "off").warning
    assert off is not None
    assert "3 standby(s)" in off
    assert "synchronous_commit = off" in off
