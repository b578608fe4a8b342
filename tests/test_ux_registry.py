"""Task options reach enqueues from the CLI and SQL; unknown queues are refused; empty queues go.

A worker records its tasks' options in the task registry when it starts;
``pgbatch enqueue QUEUE --task NAME`` and ``pgbatch.enqueue_task`` take the
task's queue, priority and max_attempts from it unless the caller gives them.
``pgbatch queues pause|resume|notify`` refuse a queue pgbatch has no trace of;
``pgbatch queues drop`` / ``drop_queue`` remove a queue that holds no live job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from pgbatch import Client, InvalidArgument, InvalidState, ValidationError, Worker, cli
from tests.conftest import TestDatabase
from tests.helpers import enqueue, job_row, raises_sqlstate, scalar
from tests.worker_harness import LoopThread, app_on

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PGBATCH_DSN", "PGBATCH_APP"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return call


@pytest.fixture
def client(db: TestDatabase) -> Iterator[Client]:
    c = Client.connect(db.dsn, max_size=2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def registered(db: TestDatabase) -> None:
    """A worker of an App with two tasks has started (and stopped) on the database."""
    with app_on(db.dsn) as app, LoopThread() as lt:
        @app.task(queue="slow", name="mytasks.too_long", max_attempts=1, priority=7)
        def too_long() -> None:
            return None

        @app.task(queue="mail", name="mytasks.send", lease=90)
        def send(to: str) -> None:
            return None

        worker = lt.start(Worker(app, ["unserved"], concurrency=1, poll_interval=30))
        lt.stop(worker)


def test_a_worker_records_its_tasks_options_at_start(
        db: TestDatabase, registered: None, client: Client) -> None:
    tasks = {t.name: t for t in client.list_tasks()}
    assert set(tasks) == {"mytasks.too_long", "mytasks.send"}
    t = tasks["mytasks.too_long"]
    assert (t.queue, t.priority, t.max_attempts) == ("slow", 7, 1)
    assert tasks["mytasks.send"].options["lease_seconds"] == 90
    assert t.registered_by
    assert [x.name for x in client.list_tasks("mytasks.send")] == ["mytasks.send"]


def test_cli_enqueue_by_task_name_gets_the_tasks_options(
        db: TestDatabase, registered: None, run: Run) -> None:
    conn = db.connect()
    code, out, err = run("--dsn", db.dsn, "enqueue", "slow", "--task", "mytasks.too_long")
    assert code == 0, err
    row = job_row(conn, UUID(out.strip()))
    assert row is not None
    assert (row["queue"], row["max_attempts"], row["priority"]) == ("slow", 1, 7)
    assert row["payload"] == {"task": "mytasks.too_long", "kwargs": {}}
    assert err == ""

    code, out, err = run("--dsn", db.dsn, "enqueue", "slow", "--task", "mytasks.too_long",
                         "--max-attempts", "4", "--priority", "0")
    assert code == 0, err
    row = job_row(conn, UUID(out.strip()))
    assert row is not None
    assert (row["max_attempts"], row["priority"]) == (4, 0)  # the caller's values win


def test_cli_enqueue_of_an_unregistered_short_name_warns_with_the_full_name(
        db: TestDatabase, registered: None, run: Run) -> None:
    code, _, err = run("--dsn", db.dsn, "enqueue", "slow", "--task", "too_long")
    assert code == 0, err
    assert "no worker has registered a task named 'too_long'" in err
    assert "did you mean 'mytasks.too_long'?" in err


def test_sql_enqueue_task_takes_queue_priority_and_attempts_from_the_registry(
        db: TestDatabase, registered: None) -> None:
    conn = db.connect()
    jid = scalar(conn, "select pgbatch.enqueue_task('mytasks.too_long', '{}')")
    row = job_row(conn, jid)
    assert row is not None
    assert (row["queue"], row["max_attempts"], row["priority"]) == ("slow", 1, 7)
    jid = scalar(conn, "select pgbatch.enqueue_task('mytasks.send', '{\"to\": \"a\"}',"
                       " queue => 'other', max_attempts => 3)")
    row = job_row(conn, jid)
    assert row is not None
    assert (row["queue"], row["max_attempts"]) == ("other", 3)
    assert row["payload"] == {"task": "mytasks.send", "kwargs": {"to": "a"}}


def test_enqueue_task_of_an_unregistered_task_needs_a_queue(
        db: TestDatabase, client: Client) -> None:
    conn = db.connect()
    before = scalar(conn, "select count(*) from pgbatch.job")
    with pytest.raises(InvalidArgument, match="not in the task registry"):
        client.enqueue_task("nobody.has_it")
    with raises_sqlstate("PB006"), conn.transaction():
        conn.execute("select pgbatch.enqueue_task('x.y', '[1]', queue => 'q')")
    assert scalar(conn, "select count(*) from pgbatch.job") == before
    jid = client.enqueue_task("nobody.has_it", {"a": 1}, queue="q")
    row = job_row(conn, jid)
    assert row is not None
    assert (row["queue"], row["max_attempts"]) == ("q", 20)


def test_register_tasks_refuses_malformed_entries(db: TestDatabase, client: Client) -> None:
    bad: list[Any] = [
        [{"name": "", "queue": "q", "priority": 0, "max_attempts": 1}],
        [{"name": "t", "queue": "", "priority": 0, "max_attempts": 1}],
        [{"name": "t", "queue": "q", "priority": 0, "max_attempts": 0}],
        [{"name": "t", "queue": "q", "priority": 1.5, "max_attempts": 1}],
        [{"name": "t", "queue": "q", "priority": 0, "max_attempts": 1, "options": []}],
    ]
    for tasks in bad:
        with pytest.raises(ValidationError):
            client.register_tasks("node", tasks)
    assert client.list_tasks() == []


# -- queues ----------------------------------------------------------------------------

def test_pausing_an_unknown_queue_is_refused_and_changes_nothing(
        db: TestDatabase, run: Run, client: Client) -> None:
    for sub in (["pause"], ["resume"], ["notify"], ["drop"]):
        argv = ["--dsn", db.dsn, "queues", *sub, "nosuchqueue"] + (["off"] if sub == ["notify"]
                                                                   else [])
        code, out, err = run(*argv)
        assert code == 1, (sub, out, err)
        assert err.startswith("error: no queue named 'nosuchqueue'")
    assert client.queue_stats("nosuchqueue") == []
    code, out, err = run("--dsn", db.dsn, "queues", "pause", "nosuchqueue", "--create")
    assert (code, out.strip()) == (0, "queue nosuchqueue paused (created)")
    (stat,) = client.queue_stats("nosuchqueue")
    assert stat.paused


def test_an_empty_queue_can_be_dropped_and_leaves_status(
        db: TestDatabase, run: Run, client: Client) -> None:
    conn = db.connect()
    enqueue(conn, "to-drop")
    code, _, err = run("--dsn", db.dsn, "queues", "drop", "to-drop")
    assert code == 1
    assert "holds 1 live jobs" in err
    assert len(client.queue_stats("to-drop")) == 1
    (job,) = client.claim("to-drop")
    client.ack(job.id, job.claim_token)
    code, out, err = run("--dsn", db.dsn, "queues", "drop", "to-drop")
    assert (code, out.strip()) == (0, "queue to-drop dropped"), err
    assert client.queue_stats("to-drop") == []
    assert client.get_job(job.id).state == "done"  # the archive stays readable


def test_drop_queue_in_sql_refuses_unknown_and_non_empty_queues(
        db: TestDatabase, client: Client) -> None:
    conn = db.connect()
    with pytest.raises(InvalidArgument, match="no queue named 'never-seen'"):
        client.drop_queue("never-seen")
    enqueue(conn, "busy")
    with pytest.raises(InvalidState, match="live jobs"):
        client.drop_queue("busy")
    assert client.queue_stats("busy")[0].pending == 1
