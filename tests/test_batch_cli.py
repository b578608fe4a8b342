"""``pgbatch runs …`` in process (``cli.main``) against a real database: readable
tables, ``show`` with steps and events, request ids, and the exit status and
message of errors and of transitions that lost a race."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch import cli
from pgbatch.cli.runs import EXIT_NOT_APPLIED
from tests.batch_helpers import (
    claim_item,
    invariants_checked,  # noqa: F401 - the fixture of pytestmark
    register,
    run_to_end,
    start,
)
from tests.conftest import TestDatabase
from tests.helpers import scalar

#: I1-I7 hold after every test (tests/batch_helpers.py).
pytestmark = pytest.mark.usefixtures("invariants_checked")

Conn = psycopg.Connection[Any]
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may pick up the developer's PGBATCH_DSN or embedded server."""
    for name in ("PGBATCH_DSN", "PGBATCH_APP"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delitem(sys.modules, "tests.cli_app", raising=False)


@pytest.fixture
def run(db: TestDatabase, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv)`` -> (exit status, stdout, stderr) of ``pgbatch --dsn <db> argv``."""

    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["--dsn", db.dsn, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def job(conn: Conn) -> str:
    register(conn, "nightly")
    return "nightly"


def launched_id(out: str) -> int:
    match = re.fullmatch(r"execution (\d+): STARTING \(.*\)\n", out)
    assert match, out
    return int(match.group(1))


def test_list_of_no_runs(run: Run) -> None:
    assert run("runs", "list") == (0, "no runs\n", "")


def test_launch_list_and_show(run: Run, conn: Conn, job: str) -> None:
    code, out, _ = run("runs", "launch", job, '{"day": "2026-12-01"}')
    assert code == 0
    first = launched_id(out)
    assert out == f"execution {first}: STARTING (job {job})\n"
    assert run_to_end(conn, first, chunks=3) == "COMPLETED"
    # a retry with the same request id is the same launch
    assert launched_id(run("runs", "launch", job, '{"day": "2026-12-02"}', "--request-id",
                           "r1")[1]) == \
        launched_id(run("runs", "launch", job, '{"day": "2026-12-02"}', "--request-id",
                        "r1")[1])

    code, out, _ = run("runs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "JOB", "STATUS", "STEP", "READ", "WRITTEN", "DURATION",
                                "STARTED"]
    assert len(lines) == 3
    done = lines[2].split()
    assert done[:6] == [str(first), job, "COMPLETED", "load", "60", "60"]
    assert re.fullmatch(r"[\d.]+s", done[6])
    assert lines[1].split()[2:7] == ["STARTING", "prepare", "0", "0", "-"]

    code, out, _ = run("runs", "list", "--status", "COMPLETED", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [(r["execution_id"], r["read_count"]) for r in listed] == [(first, 60)]
    assert run("runs", "list", "--job", "other")[1] == "no runs\n"

    code, out, _ = run("runs", "show", str(first))
    assert code == 0
    assert re.search(rf"^execution\s+{first}$", out, re.MULTILINE)
    assert re.search(r"^params\s+day=2026-12-01$", out, re.MULTILINE)
    assert re.search(r"^read / written\s+60 / 60$", out, re.MULTILINE)
    steps = out[out.index("steps:"):out.index("events:")].splitlines()
    assert steps[1].split()[:8] == ["STEP", "STATUS", "EXIT", "READ", "WRITTEN", "FILTERED",
                                    "SKIPPED", "COMMITS"]
    assert steps[2].split()[:8] == ["prepare", "COMPLETED", "COMPLETED", "30", "30", "0", "0",
                                    "3"]
    events = out[out.index("events:"):].splitlines()
    assert events[1].split() == ["AT", "KIND", "FROM", "TO", "ACTOR", "REQUEST"]
    assert events[2].split()[2:4] == ["launched", "-"]
    shown = json.loads(run("runs", "show", str(first), "--json")[1])
    assert set(shown) == {"execution", "steps", "events"}
    assert shown["execution"]["execution_status"] == "COMPLETED"
    assert [s["step_name"] for s in shown["steps"]] == ["prepare", "load"]


def test_stop_restart_abandon_and_lost_races(run: Run, conn: Conn, job: str) -> None:
    x = launched_id(run("runs", "launch", job)[1])
    assert run("runs", "stop", str(x), "--request-id", "s1") == (
        0, f"execution {x}: stopped\n", "")
    assert run("runs", "stop", str(x), "--request-id", "s1")[0] == 0  # the same call again
    code, out, err = run("runs", "stop", str(x), "--request-id", "s2")
    assert (code, out) == (EXIT_NOT_APPLIED, "")
    assert err == f"error: execution {x} was not stopped: it is STOPPED (request s2)\n"

    code, out, _ = run("runs", "restart", str(x))
    assert code == 0
    y = int(out.split()[1].rstrip(":"))
    assert out == f"execution {y}: STARTING (restart of execution {x})\n"
    assert start(conn, claim_item(conn))["status"] == "STARTED"
    assert run("runs", "stop", str(y)) == (
        0, f"execution {y}: stop requested; its worker stops at the next chunk commit or "
           "step boundary\n", "")
    code, _, err = run("runs", "abandon", str(y))
    assert code == 1
    assert err.startswith(f"error: job execution {y} is STOPPING and its worker holds a live")

    z = launched_id(run("runs", "launch", job, '{"n": 2}')[1])
    run("runs", "stop", str(z))
    assert run("runs", "abandon", str(z))[1] == (
        f"execution {z}: abandoned; its job instance can no longer be restarted\n")
    code, _, err = run("runs", "restart", str(z))
    assert code == 1
    assert err.startswith("error: ")
    assert err.rstrip().endswith("(abandoned)")


def test_launch_errors_and_next(run: Run, conn: Conn, job: str) -> None:
    x = launched_id(run("runs", "launch", job)[1])
    code, _, err = run("runs", "launch", job)
    assert code == 1
    assert err.startswith("error: ")
    assert "running" in err.lower()
    code, _, err = run("runs", "launch", "no-such-job")
    assert code == 1
    assert err.startswith('error: job "no-such-job" is not registered (a worker registers')
    code, _, err = run("runs", "launch", job, "[1, 2]")
    assert code == 2
    assert "must be a JSON object" in err
    code, _, err = run("runs", "launch", job, '{"n": {"type": "money", "value": 1}}')
    assert code == 1
    assert err.startswith("error: ")

    assert run_to_end(conn, x) == "COMPLETED"
    code, _, err = run("runs", "launch", job)
    assert code == 1
    assert "complete" in err.lower()
    y = launched_id(run("runs", "launch", job, "--next")[1])
    assert scalar(conn, "select params -> 'run_id' ->> 'value' from pgbatch.job_execution"
                        " where id = %s", [y]) == "1"


def test_unknown_execution_ids(run: Run) -> None:
    for sub in ("show", "restart", "stop", "abandon"):
        code, out, err = run("runs", sub, "987654")
        assert (code, out, err) == (1, "", "error: job execution 987654 not found\n"), sub
    assert run("runs", "show", "0")[0] == 2
    assert run("runs", "show", "x")[0] == 2


def test_recover_and_cancel(run: Run, conn: Conn, job: str) -> None:
    x = launched_id(run("runs", "launch", job)[1])
    code, out, _ = run("runs", "cancel", str(x))
    assert code == 0
    assert out.startswith(f"execution {x}: cancelled (")
    code, _, err = run("runs", "recover", str(x))
    assert code == EXIT_NOT_APPLIED
    assert err.startswith(f"error: execution {x} was not recovered: it is ")
