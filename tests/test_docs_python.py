"""The python blocks of README.md and docs/*.md run as written, and do what the page says.

Markers (an HTML comment before a block; the full list is in
tests/docs_helpers.py)::

    <!-- pgbatch-doc: group=quickstart setup=read-chunks needs=worker check=fenced-chunks -->
    <!-- pgbatch-doc: run -->
    <!-- pgbatch-doc: fragment="why it cannot run" -->

Every block that is not a ``fragment`` runs here. The blocks of one
``group=`` of a page run in page order in one module (``doc_<page>_<group>``,
so their tasks are named like a worker's import names them) on one fresh,
migrated database that ``$PGBATCH_DSN`` points at, so ``pgbatch.App()``
uses it; a block without a group runs alone. Before a block, its
``setup=`` steps (``SETUPS`` below) provide only what the page says the
block assumes; after it, its ``check=`` (``CHECKS``) asserts the outcome the
page promises: it may enqueue, run a worker (``run_until_empty`` in this
process, or until a row says the work is done) and read the database. A
``needs=worker`` block whose check runs no worker fails. Every App the
blocks create is closed at the end, and log handlers they add are removed.
Classification (a docs/ block with neither ``run`` nor ``fragment``) is
checked in tests/test_docs_examples.py. The batch guide's worked example is
an excerpt of examples/batch_etl.py: that file runs here as the guide says
(``setup``, a worker of its App, a launch).
"""

from __future__ import annotations

import importlib
import logging
import os
import runpy
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

import pgbatch
from pgbatch import App
from tests.conftest import TestDatabase
from tests.docs_helpers import Block, DocRun, Step, group_id, groups, module_name, run_group

pytestmark = pytest.mark.timeout(180)

PY_GROUPS = groups("python")


def _one(run: DocRun, query: str, params: list[Any] | None = None) -> Any:
    row = run.conn.execute(query, params or []).fetchone()
    assert row is not None, query
    return row[0]


def _job(run: DocRun, job_id: UUID) -> pgbatch.JobInfo:
    return run.app().get_job(job_id)


# -- setups: what a page says a block assumes ------------------------------------------


def _quickstart_job_id(run: DocRun) -> None:
    """README "Read jobs back": ``job_id`` of the Quick start's ``__main__`` part."""
    run.ns["job_id"] = run.state["quickstart_job_id"]


def _read_chunks(run: DocRun) -> None:
    """README "Several transactions": a ``read_chunks(path)`` and a table ``imported``."""
    run.conn.execute("create table imported (path text, chunk int, rows text[],"
                     " primary key (path, chunk))")

    def read_chunks(path: str) -> Iterator[list[str]]:
        yield from (["a", "b"], ["c"], ["d", "e", "f"])

    run.ns["read_chunks"] = read_chunks


def _dsn(run: DocRun) -> None:
    """docs/batch-guide.md: ``dsn``, the worker's database."""
    run.ns["dsn"] = run.dsn


def _etl_job(run: DocRun) -> None:
    """docs/batch-guide.md, "The operator API": the example's ``etl-orders`` job registered."""
    from pgbatch.batch import Job, TaskletStep, register_jobs  # noqa: PLC0415

    register_jobs(run.conn, [Job("etl-orders", [TaskletStep("check", lambda: None)])])


def _app(run: DocRun) -> None:
    """docs/batch-guide.md, "Retention": ``pgbatch``, ``timedelta`` and ``app``."""
    run.ns.update(pgbatch=pgbatch, timedelta=timedelta, app=App(run.dsn))


def _batch_python(run: DocRun) -> None:
    """docs/batch.md "Python": ``conn``, ``dsn``, a table ``out`` and the app's own helpers."""
    run.conn.execute("create table out (item_id int primary key)")
    run.ns.update(conn=run.conn, dsn=run.dsn, stop_early=False, more_to_do=lambda: False,
                  do_a_bit=lambda: None)


SETUPS: dict[str, Step] = {
    "quickstart-job-id": _quickstart_job_id,
    "read-chunks": _read_chunks,
    "dsn": _dsn,
    "etl-job": _etl_job,
    "app": _app,
    "batch-python": _batch_python,
}


# -- checks: the outcome each page promises --------------------------------------------


def _quick_start(run: DocRun) -> None:
    """Imported, it enqueues nothing; run as a script, one job that a worker runs once."""
    assert _one(run, "select count(*) from pgbatch.job") == 0
    script = run.tmp_path / f"{run.module.__name__}.py"
    assert run.block is not None
    script.write_text(run.block.code, encoding="utf-8")
    main = runpy.run_path(str(script), run_name="__main__")  # python quickstart.py
    job_id = main["job_id"]
    assert f"enqueued {job_id}" in run.output()
    assert _one(run, "select payload ->> 'task' from pgbatch.job where id = %s", [job_id]) \
        == f"{run.module.__name__}.send_email"
    stats = run.worker()
    assert stats.succeeded == 1
    job = _job(run, job_id)
    assert (job.state, job.attempt) == ("done", 1)
    assert "sending 'welcome' to a@example.com" in run.output()
    run.state["quickstart_job_id"] = job_id


def _enqueue_in_transaction(run: DocRun) -> None:
    """The table, its row and the job committed together; the job runs."""
    assert _one(run, "select paid from orders where id = 1") is False
    job = run.app().client.list_jobs("emails", state="pending")[0]
    assert job.payload["kwargs"] == {"to": "a@example.com", "subject": "order 1"}
    run.worker()
    assert _job(run, job.id).state == "done"
    assert "sending 'order 1' to a@example.com" in run.output()


def _read_jobs(run: DocRun) -> None:
    """``get_job`` printed the Quick start's done job; no dead job to page through."""
    assert "done 1 None" in run.output()
    assert run.ns["page"] == []


def _ack_effects(run: DocRun) -> None:
    """The report's follow-up job and its kv value commit with its ack."""
    job_id = run.ns["build_report"].defer(day="2030-01-01")
    run.worker()
    assert _job(run, job_id).state == "done"
    assert run.app().client.kv_get("report:2030-01-01") == {"rows": 42}
    assert "sending 'report 2030-01-01' to ops@example.com" in run.output()


def _transactional_task(run: DocRun) -> None:
    """``charge`` pays order 1 in the ack's transaction."""
    job_id = run.ns["charge"].defer(order_id=1)
    run.worker()
    assert _job(run, job_id).state == "done"
    assert _one(run, "select paid from orders where id = 1") is True


def _fenced_chunks(run: DocRun) -> None:
    """Each chunk committed in its own fenced transaction, the job done."""
    job_id = run.ns["import_file"].defer(path="orders.csv")
    run.worker()
    assert _job(run, job_id).state == "done"
    rows = run.conn.execute("select chunk, rows from imported order by chunk").fetchall()
    assert rows == [(0, ["a", "b"]), (1, ["c"]), (2, ["d", "e", "f"])]


def _own_retry(run: DocRun) -> None:
    """The task with ``retry_on``/``dead_on`` runs; its options are what it declared."""
    task = run.ns["sync_account"]
    assert (task.options.retry_on, task.options.dead_on) == ((ConnectionError, TimeoutError),
                                                             (KeyError,))
    job_id = task.defer(account_id=7)
    run.worker()
    assert _job(run, job_id).state == "done"


def _job_results(run: DocRun) -> None:
    """``add``'s return value is kept with its done job; ``report`` prints it."""
    job_id = run.ns["add"].defer(a=2, b=3)
    run.worker()
    run.ns["report"](job_id)
    assert "{'sum': 5}" in run.output()


def _handler(run: DocRun) -> None:
    """``on_upload`` enqueues a ``Resize`` job; a worker runs its ``process``."""
    run.ns["on_upload"]("cat.png")
    stats = run.worker()
    assert stats.succeeded == 1
    assert "attempt 1: resizing cat.png" in run.output()


def _job_context_logs(run: DocRun) -> None:
    """A record logged inside a job carries its id, task and attempt."""
    app = App(run.dsn)

    @app.task(queue="logs", name="shop.log_something")
    def log_something() -> None:
        logging.getLogger("shop").warning("inside the job")

    job_id = log_something.defer()
    run.worker(app)
    assert f"WARNING shop [job {job_id} shop.log_something #1] inside the job" in run.output()


def _testing_plugin(run: DocRun) -> None:
    """The example test passes on a migrated database (``pgbatch_dsn``: ``run.dsn``)."""
    run.worker_runs += 1  # the test runs run_until_empty itself
    run.ns["test_signup_sends_a_welcome_email"](run.dsn)
    assert _one(run, "select count(*) from pgbatch.job_archive where queue = 'emails'") == 1


def _maintenance_service(run: DocRun) -> None:
    """A worker's leader runs the service at start: a housekeeping job appears."""
    names = [s.name for s in run.app().maintenance_services]
    assert f"{run.module.__name__}.purge_sessions" in names

    def enqueued() -> bool:
        return bool(_one(run, "select count(*) from pgbatch.job where queue = 'housekeeping'"))
    run.worker_until(enqueued)
    assert _one(run, "select payload from pgbatch.job where queue = 'housekeeping'") == {
        "task": "purge_sessions"}


def _pgbouncer_app(run: DocRun) -> None:
    """An App told about the pooler; nothing connects until it is used."""
    app = run.app()
    assert (app.pooler, app.listen_dsn) == ("transaction", "postgresql://app@db:5432/db")


def _schedule_in_code(run: DocRun) -> None:
    """A worker of the App creates the schedule at start."""
    run.worker()
    row = run.conn.execute(
        "select cron_expr, tz, catchup_window from pgbatch.schedules('nightly-report')"
    ).fetchone()
    assert row == ("0 2 * * *", "Europe/Berlin", timedelta(hours=2))


def _schedule_ensured(run: DocRun) -> None:
    """README: ``Schedules.ensure`` created the weekly digest."""
    assert _one(run, "select cron_expr from pgbatch.schedules('weekly-digest')") == "0 8 * * MON"


def _schedules_api(run: DocRun) -> None:
    """docs/schedules.md: paused, resumed, fired by the trigger (``manual``) and the backfill."""
    assert _one(run, "select enabled from pgbatch.schedules('nightly-report')") is True
    sources = [f.source for f in run.ns["schedules"].history("nightly-report", limit=50)]
    assert sorted(sources) == ["backfill"] * 7 + ["manual"], sources


def _schedules_in_code(run: DocRun) -> None:
    """docs/schedules.md: a worker of the App creates both schedules at start."""
    run.worker()
    names = {r[0] for r in run.conn.execute("select schedule_id from pgbatch.schedules()")}
    assert names == {"nightly-report", "heartbeat"}


def _operator_api(run: DocRun) -> None:
    """launch, stop (applied), restart: a second execution of the instance."""
    ns = run.ns
    assert ns["r"].applied is True
    assert ns["y"] != ns["x"]
    statuses = dict(run.conn.execute("select id, status from pgbatch.job_execution").fetchall())
    assert statuses[ns["x"]] == "STOPPED"


def _batch_retention(run: DocRun) -> None:
    """The worker keeps batch history for 90 days."""
    config = run.ns["worker"].maintenance_config
    assert config.batch_retention == timedelta(days=90)


def _execution_ended(run: DocRun, execution: int) -> Callable[[], bool]:
    def ended() -> bool:
        return _one(run, "select status from pgbatch.job_execution where id = %s",
                    [execution]) not in ("STARTING", "STARTED")
    return ended


def _copy_in_server(run: DocRun) -> None:
    """The step, in a job run by a worker, copies ``src`` into ``dst``."""
    from pgbatch.batch import Job, register_jobs, use_batch  # noqa: PLC0415

    run.conn.execute("create table src (id int primary key, name text, amount numeric)")
    run.conn.execute("create table dst (id int primary key, name text, amount numeric)")
    run.conn.execute("insert into src select i, 'n' || i, i / 100.0"
                     " from generate_series(1, 2500) i")
    app, job = App(run.dsn), Job("copy-src", [run.ns["copy"]])
    register_jobs(run.conn, [job])
    use_batch(app, [job])
    execution = _one(run, "select pgbatch.launch_job('copy-src')")
    run.worker_until(_execution_ended(run, execution), app)
    assert _one(run, "select status from pgbatch.job_execution where id = %s",
                [execution]) == "COMPLETED"
    assert _one(run, "select count(*) from (select * from src except select * from dst) d") == 0
    assert _one(run, "select count(*) from dst") == 2500


def _load_items(run: DocRun) -> None:
    """Launched from SQL, the job runs through the App's workers: 1000 doubled items."""
    execution = _one(run, "select pgbatch.launch_job('load-items', '{\"day\": \"2026-12-01\"}')")

    run.worker_until(_execution_ended(run, execution))
    assert _one(run, "select status from pgbatch.job_execution where id = %s",
                [execution]) == "COMPLETED"
    assert _one(run, "select count(*) from out") == 1000
    assert _one(run, "select sum(item_id) from out") == 2 * sum(range(1000))


CHECKS: dict[str, Step] = {
    "quick-start": _quick_start,
    "enqueue-in-transaction": _enqueue_in_transaction,
    "read-jobs": _read_jobs,
    "ack-effects": _ack_effects,
    "transactional-task": _transactional_task,
    "fenced-chunks": _fenced_chunks,
    "own-retry": _own_retry,
    "job-results": _job_results,
    "handler": _handler,
    "job-context-logs": _job_context_logs,
    "testing-plugin": _testing_plugin,
    "maintenance-service": _maintenance_service,
    "pgbouncer-app": _pgbouncer_app,
    "schedule-in-code": _schedule_in_code,
    "schedule-ensured": _schedule_ensured,
    "schedules-api": _schedules_api,
    "schedules-in-code": _schedules_in_code,
    "operator-api": _operator_api,
    "batch-retention": _batch_retention,
    "load-items": _load_items,
    "copy-in-server": _copy_in_server,
}


def test_every_marker_names_a_known_setup_and_check() -> None:
    blocks = [b for g in PY_GROUPS for b in g]
    unknown = [(b.where, n) for b in blocks for n in b.names("setup") if n not in SETUPS]
    unknown += [(b.where, b.marker["check"]) for b in blocks
                if b.marker.get("check") and b.marker["check"] not in CHECKS]
    assert unknown == []


def test_the_readme_blocks_all_run() -> None:
    """No README block is a fragment: each runs, and each checks an outcome."""
    readme = [b for g in PY_GROUPS for b in g if b.page == "README.md"]
    assert len(readme) >= 15
    unchecked = [b.where for b in readme if not b.marker.get("check")]
    assert unchecked == [], (
        f"README python blocks without a check= of what they promise: {unchecked} (add one "
        "to CHECKS, and a <!-- pgbatch-doc: ... check=NAME --> before the block)")


@pytest.fixture
def doc_run(db: TestDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[DocRun]:
    """A DocRun on a fresh database; every App made meanwhile is closed at the end."""
    blocks: list[Block] = request.param
    made: list[App] = []
    init = App.__init__

    def tracked_init(self: App, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(App, "__init__", tracked_init)
    monkeypatch.setenv("PGBATCH_DSN", db.dsn)
    monkeypatch.delenv("PGBATCH_POOLER", raising=False)
    monkeypatch.delenv("PGBATCH_LISTEN_DSN", raising=False)
    monkeypatch.chdir(tmp_path)  # a script run as __main__ is named after its file here
    name = module_name(blocks)
    module = type(sys)(name)
    module.__file__ = str(tmp_path / f"{name}.py")
    monkeypatch.setitem(sys.modules, name, module)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    conn = psycopg.connect(db.dsn, autocommit=True)
    try:
        yield DocRun(module=module, dsn=db.dsn, conn=conn, tmp_path=tmp_path, capsys=capsys)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for app in made:
            app.close()
        conn.close()
        assert os.environ["PGBATCH_DSN"] == db.dsn


@pytest.mark.parametrize("doc_run", PY_GROUPS, ids=[group_id(g) for g in PY_GROUPS],
                         indirect=True)
def test_the_python_blocks_run_as_written(doc_run: DocRun, request: pytest.FixtureRequest
                                          ) -> None:
    run_group(request.node.callspec.params["doc_run"], doc_run, SETUPS, CHECKS)


def test_the_batch_guides_example_runs_to_completion(db: TestDatabase,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    """docs/batch-guide.md's worked example (its excerpt is checked against the file):
    ``setup``, a worker of ``examples.batch_etl:app``, a launch: every order cleaned once."""
    monkeypatch.setenv("PGBATCH_DSN", db.dsn)
    monkeypatch.setenv("ETL_DELAY", "0")  # the example's stand-in for real work
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    monkeypatch.delitem(sys.modules, "examples.batch_etl", raising=False)
    example = importlib.import_module("examples.batch_etl")
    monkeypatch.setattr(example, "ORDERS", 2_000)
    conn = psycopg.connect(db.dsn, autocommit=True)
    try:
        example.setup(db.dsn)
        assert "shop.orders: 2000 rows" in capsys.readouterr().out
        run = DocRun(module=example, dsn=db.dsn, conn=conn, tmp_path=tmp_path, capsys=capsys)
        execution = _one(run, "select pgbatch.launch_job('etl-orders',"
                              " '{\"batch\": \"2026-12-01\"}')")
        run.worker_until(_execution_ended(run, execution), example.app)
        assert _one(run, "select status from pgbatch.job_execution where id = %s",
                    [execution]) == "COMPLETED"
        assert _one(run, "select count(*) from shop.orders_clean") == 2000
        assert _one(run, "select count(*) from shop.orders o join shop.orders_clean c using (id)"
                    " where c.customer"
                    " = initcap(regexp_replace(btrim(o.customer), '\\s+', ' ', 'g'))"
                    " and c.amount = o.amount_cents / 100.0") == 2000
    finally:
        example.app.close()
        conn.close()
