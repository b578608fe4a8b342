"""``pgbatch runs approve|reject|approvals`` and ``runs list --awaiting-approval`` in
process (``cli.main``) against a real database: what waits and why, decisions
with actor, comment and request id, lost races (exit status 3) and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch import cli
from pgbatch.cli.runs import EXIT_NOT_APPLIED
from tests.batch_helpers import launch
from tests.conftest import TestDatabase
from tests.docs_helpers import page_blocks, psql_path
from tests.gate_helpers import (
    approval,
    gates_checked,  # noqa: F401 - the fixture of pytestmark
    reach_gate,
    register_gated,
)
from tests.test_roles import ADMIN_LOGIN, as_role, logins  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("gates_checked")

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


def test_awaiting_approval_list_approve_and_the_decided_list(run: Run, conn: Conn) -> None:
    register_gated(conn)
    assert run("runs", "list", "--awaiting-approval") == (0, "no runs awaiting approval\n", "")
    waiting = launch(conn, "g", {"n": 1})
    reach_gate(conn, waiting, timeout=timedelta(hours=4))
    code, out, _ = run("runs", "list", "--awaiting-approval")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "JOB", "GATE", "REQUESTED", "EXPIRES", "ON", "TIMEOUT"]
    assert row.split()[:3] == [str(waiting), "g", "check"]
    assert row.split()[-1] == "reject"
    code, out, _ = run("runs", "list", "--awaiting-approval", "--json")
    assert [(r["execution_id"], r["gate_name"]) for r in json.loads(out)] == [(waiting, "check")]
    code, out, _ = run("runs", "approvals", "--pending")
    assert code == 0
    assert out.splitlines()[1].split()[:5] == [str(waiting), "g", "check", "PENDING",
                                               "AWAITING_APPROVAL"]

    code, out, err = run("runs", "approve", str(waiting), "check", "--actor", "alice",
                         "--comment", "totals match", "--request-id", "ops-1")
    assert (code, err) == (0, "")
    assert out == f"execution {waiting}: gate check approved; the next step runs (STARTING)\n"
    a = approval(conn, waiting)
    assert (a["status"], a["decided_by"], a["comment"]) == ("APPROVED", "alice", "totals match")
    # the same request again: the first result; another one: the lost race, exit status 3
    assert run("runs", "approve", str(waiting), "check", "--request-id", "ops-1")[0] == 0
    code, out, err = run("runs", "reject", str(waiting), "check")
    assert (code, out) == (EXIT_NOT_APPLIED, "")
    assert err.startswith(f"error: gate check of execution {waiting} was not rejected: it is "
                          "APPROVED (the run is STARTING; request ")
    code, out, _ = run("runs", "approvals", "--decided", "--json")
    assert [(r["status"], r["decided_by"]) for r in json.loads(out)] == [("APPROVED", "alice")]
    assert run("runs", "approvals", "--pending") == (0, "no approvals\n", "")
    assert run("runs", "list", "--awaiting-approval")[1] == "no runs awaiting approval\n"


def test_reject_and_errors(run: Run, conn: Conn) -> None:
    register_gated(conn)
    waiting = launch(conn, "g")
    reach_gate(conn, waiting)
    code, _, err = run("runs", "approve", str(waiting), "chekc")
    assert code != 0
    assert err.startswith('error: job "g" of execution')
    assert "no gate" in err
    code, _, err = run("runs", "approve", "999", "check")
    assert code != 0
    assert "not found" in err
    code, out, err = run("runs", "reject", str(waiting), "check", "--comment", "no")
    assert (code, err) == (0, "")
    assert out == (f"execution {waiting}: gate check rejected; the run FAILED "
                   "(APPROVAL_REJECTED); restarting it asks again\n")
    code, _, err = run("runs", "approvals", "--pending", "--decided")
    assert code == 2
    assert "not allowed with argument" in err


def test_admins_decide_and_list_gates_producers_and_workers_may_not(
        conn: Conn, as_role: dict[str, Conn]) -> None:  # noqa: F811 - the fixture
    register_gated(conn)
    waiting = launch(conn, "g")
    reach_gate(conn, waiting)
    for kind in ("producer", "worker"):
        for query in ("select pgbatch.approve_gate(%s, 'check')",
                      "select pgbatch.reject_gate(%s, 'check')",
                      "select pgbatch.approvals() where %s is not null"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                as_role[kind].execute(query, [waiting])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role["admin"].execute("select pgbatch.expire_gates()")
    admin = as_role["admin"]
    assert admin.execute("select count(*) from pgbatch.approvals('PENDING')").fetchone() == (1,)
    assert admin.execute("select * from pgbatch.approve_gate(%s, 'check')",
                         [waiting]).fetchone() == (True, "APPROVED", "STARTING")
    assert approval(conn, waiting)["decided_by"] == ADMIN_LOGIN
    assert as_role["worker"].execute("select pgbatch.expire_gates()").fetchone() == (0,)


def test_the_psql_example_of_the_gate_guide_runs(db: TestDatabase, conn: Conn,
                                                 tmp_path: Path) -> None:
    register_gated(conn, "monthly-invoices")
    for _ in range(41):  # the guide's example decides execution 42
        conn.execute("select nextval(pg_get_serial_sequence('pgbatch.job_execution', 'id'))")
    waiting = launch(conn, "monthly-invoices")
    assert waiting == 42
    reach_gate(conn, waiting)
    blocks = page_blocks("docs/batch-gates.md", ("sql",))
    assert len(blocks) == 1
    path = tmp_path / "example.sql"
    path.write_text(blocks[0].code, encoding="utf-8")
    ran = subprocess.run([psql_path(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.dsn,
                          "-f", str(path)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    a = approval(conn, waiting)
    assert (a["status"], a["decided_by"], a["comment"]) == ("APPROVED", "alice", "totals match")
