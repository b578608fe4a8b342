"""``pgbatch runs pause|resume`` and ``runs list --state paused`` in process
(``cli.main``) against a real database: the messages, request ids, the exit
status of a call that lost its race and the paused view."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch import cli
from pgbatch.cli.runs import EXIT_NOT_APPLIED
from tests.batch_helpers import (
    event_count,
    execution,
    invariants_checked,  # noqa: F401 - the fixture of pytestmark
    launch,
)
from tests.conftest import TestDatabase
from tests.helpers import db_now
from tests.pause_sql import run_and_park, setup

#: I1-I7 hold after every test (tests/batch_helpers.py).
pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PGBATCH_DSN", "PGBATCH_APP"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delitem(sys.modules, "tests.cli_app", raising=False)


@pytest.fixture
def run(db: TestDatabase, capsys: pytest.CaptureFixture[str]) -> Run:
    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["--dsn", db.dsn, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_pause_resume_and_the_paused_list(conn: Conn, run: Run) -> None:
    setup(conn)
    waiting = launch(conn, "j", {"n": 1})
    parked = launch(conn, "j", {"n": 2})
    code, out, _ = run("runs", "pause", str(waiting), "--reason", "hold for the audit",
                       "--request-id", "ops-1")
    assert code == 0
    assert out.strip() == f"execution {waiting}: paused"
    assert run("runs", "pause", str(waiting), "--request-id", "ops-1")[0] == 0  # a retry
    code, _, err = run("runs", "pause", str(waiting))
    assert code == EXIT_NOT_APPLIED
    assert f"execution {waiting} was not paused: it is PAUSED" in err
    at = db_now(conn) + timedelta(hours=2)
    run_and_park(conn, [1, 2], reason="totals differ", resume_at=at)

    code, out, _ = run("runs", "list", "--state", "paused")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["ID", "JOB", "STEP", "REASON", "RESUME"]
    assert lines[1].split()[0] == str(parked)
    assert "totals differ" in lines[1]
    assert lines[2].split()[0] == str(waiting)
    assert "hold for the audit" in lines[2]
    assert "on resume" in lines[2]
    code, out, _ = run("runs", "list", "--state", "PAUSED", "--json")
    data = json.loads(out)
    assert [r["execution_id"] for r in data] == [parked, waiting]
    assert data[0]["pause_reason"] == "totals differ"
    assert data[0]["resume_count"] == 0

    code, out, _ = run("runs", "resume", str(parked), "--request-id", "ops-2")
    assert code == 0
    assert f"execution {parked}: resumed (STARTING)" in out
    assert run("runs", "resume", str(parked), "--request-id", "ops-2")[0] == 0
    code, _, err = run("runs", "resume", str(parked))
    assert code == EXIT_NOT_APPLIED
    assert "it is STARTING, not PAUSED" in err
    assert event_count(conn, parked, "resumed") == 1
    assert execution(conn, parked)["resume_count"] == 1
    assert run("runs", "list", "--state", "paused")[1].count("\n") == 2  # header + 1


def test_bad_input(conn: Conn, run: Run) -> None:
    setup(conn)
    exec_id = launch(conn)
    code, _, err = run("runs", "resume", "999999")
    assert code != 0
    assert "999999 not found" in err
    code, _, err = run("runs", "pause", str(exec_id), "--resume-at", "2001-01-01T00:00:00Z")
    assert code != 0
    assert "not after now" in err
    assert execution(conn, exec_id)["status"] == "STARTING"
    code, _, err = run("runs", "list", "--state", "snoozing")
    assert code == 2
    assert "not a status" in err
