"""Least-privilege roles (docs/roles.md): what producer, worker, admin and viewer logins may do.

Each login role here is a member of exactly one group role and has no other
right. Setup, fault injection and checks use the superuser connection.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from pgbatch import AckEffects, MaintenanceConfig, Worker, _roles
from pgbatch.cli import main as cli_main
from pgbatch.embedded import PgServer, default_data_dir
from tests.conftest import TEST_WORKER_LOGIN, PgTestServer, TestDatabase, short_tmp_dir
from tests.helpers import archive_row, expire_lease, job_row, scalar, state_snapshot
from tests.worker_harness import LoopThread, app_on, wait_until

Conn = psycopg.Connection[Any]
PRODUCER_LOGIN = "pgbatch_test_producer"
ADMIN_LOGIN = "pgbatch_test_admin"
VIEWER_LOGIN = "pgbatch_test_viewer"
DENIED = psycopg.errors.InsufficientPrivilege

#: Every public function the viewer may execute: each changes nothing (reports and pure
#: helpers). A new public function must be put in this set or in NOT_FOR_VIEWER.
FOR_VIEWER = frozenset({
    "approvals", "backoff", "canonical_params", "channel_name", "check_compat", "cron_missed",
    "cron_next", "cron_occurrences", "cron_parse", "cron_prev", "execution_events",
    "get_execution", "get_job", "job_executions", "job_executions_page", "job_key", "kv_get",
    "limits", "list_jobs", "list_tasks", "max_payload_bytes", "metrics", "now",
    "paused_executions", "queue_stats", "schedule_fires", "schedule_occurrences", "schedules",
    "step_executions", "uuid_v7", "web_nodes",
})
#: Every other public function: it changes state, or is a worker's own call.
NOT_FOR_VIEWER = frozenset({
    "abandon_execution", "ack", "ack_ids", "ack_many", "announce_due", "approve_gate",
    "await_gate", "backfill_schedule", "cancel_execution", "cancel_job", "claim",
    "commit_chunk", "compact_counters", "create_schedule", "dead_letter", "delete_schedule",
    "deregister_node", "drop_queue", "end_step", "enqueue", "enqueue_arrays", "enqueue_many",
    "enqueue_task", "ensure_schedule", "execution_control", "expire_gates", "fence_claim",
    "handoff_execution", "heartbeat_node", "holds_lead", "launch_job", "nack", "next_due",
    "next_instance", "park_execution", "pause_execution", "pause_queue", "pause_schedule",
    "purge_batch_history", "reap_expired", "recover_execution", "recover_executions",
    "register_job", "register_node", "register_tasks", "reject_gate", "release", "renew_lease",
    "requeue_dead_job", "resign_lead", "restart_execution", "resume_due_executions",
    "resume_execution", "resume_queue", "resume_schedule", "run_server_chunks", "set_queue_notify",
    "start_execution", "start_step", "stop_execution", "sweep_retention", "tick_schedules",
    "trigger_schedule", "try_lead", "update_schedule", "vacuum_stats",
})


@pytest.fixture(scope="session")
def logins(pg_server: PgTestServer, template_db: str) -> dict[str, str]:
    """Login roles of the session: kind -> name, each a member of one group role only."""
    with psycopg.connect(pg_server.admin_dsn(template_db), autocommit=True) as c:
        for login, group in ((PRODUCER_LOGIN, "pgbatch_producer"), (ADMIN_LOGIN, "pgbatch_admin"),
                             (VIEWER_LOGIN, "pgbatch_viewer")):
            with c.transaction():
                c.execute("select pg_advisory_xact_lock(8099550625553147906)")
                if c.execute("select from pg_roles where rolname = %s", [login]).fetchone() is None:
                    c.execute(sql.SQL("create role {} login").format(sql.Identifier(login)))
                c.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group),
                                                           sql.Identifier(login)))
    return {"producer": PRODUCER_LOGIN, "worker": TEST_WORKER_LOGIN, "admin": ADMIN_LOGIN,
            "viewer": VIEWER_LOGIN}


@pytest.fixture
def as_role(db: TestDatabase, logins: dict[str, str]) -> Iterator[dict[str, Conn]]:
    """An autocommit connection per kind, as that kind's login role."""
    conns = {kind: psycopg.connect(make_conninfo(db.dsn, user=login), autocommit=True)
             for kind, login in logins.items()}
    try:
        yield conns
    finally:
        for c in conns.values():
            c.close()


def _enqueue(conn: Conn, queue: str = "q", payload: dict[str, Any] | None = None) -> uuid.UUID:
    return uuid.UUID(str(scalar(conn, "select pgbatch.enqueue(%s, %s)",
                                [queue, Jsonb(payload or {"secret": "s"})])))


def _claim(conn: Conn, queue: str = "q") -> tuple[uuid.UUID, uuid.UUID]:
    row = conn.execute("select id, claim_token from pgbatch.claim(%s)", [queue]).fetchone()
    assert row is not None
    return row[0], row[1]


def _state(conn: Conn, jid: uuid.UUID) -> str | None:
    row = job_row(conn, jid)
    return None if row is None else str(row["state"])


def _denied(conn: Conn, query: str, params: Any = None) -> None:
    with pytest.raises(DENIED):
        conn.execute(query, params)


# -- the catalog -----------------------------------------------------------------------------

def test_every_function_is_executable_by_exactly_its_roles_and_never_by_public(
        conn: Conn) -> None:
    rows = conn.execute("""
        select p.proname, p.prosecdef, coalesce(p.proconfig, '{}'),
               a.granted_to, a.security_definer, a.viewer,
               exists (select from aclexplode(p.proacl) x where x.grantee = 0),
               has_function_privilege('pgbatch_producer', p.oid, 'execute'),
               has_function_privilege('pgbatch_worker', p.oid, 'execute'),
               has_function_privilege('pgbatch_admin', p.oid, 'execute'),
               has_function_privilege('pgbatch_viewer', p.oid, 'execute')
          from pg_proc p left join pgbatch.function_access a on a.function_name = p.proname
         where p.pronamespace = 'pgbatch'::regnamespace""").fetchall()
    assert len(rows) > 30
    may = {"producer": (True, True, True), "worker": (False, True, False),
           "admin": (False, False, True)}
    for name, secdef, config, granted_to, want_secdef, viewer, public, *by_role in rows:
        assert not public, f"PUBLIC may execute pgbatch.{name}"
        if name.startswith("_"):
            assert by_role == [False] * 4, f"a group role may execute pgbatch.{name}"
            continue
        assert granted_to is not None, f"pgbatch.{name} has no function_access row"
        assert tuple(by_role) == (*may[granted_to], viewer), (name, by_role)
        assert secdef == want_secdef, name
        if secdef:
            assert "search_path=pg_catalog, pgbatch, pg_temp" in config, (name, config)


def test_apply_privileges_refuses_a_public_function_nobody_mapped(conn: Conn) -> None:
    conn.execute("create function pgbatch.forgotten() returns int language sql as 'select 1'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="function_access"):
        conn.execute("select pgbatch._apply_privileges()")


def test_apply_privileges_is_idempotent(conn: Conn) -> None:
    before = conn.execute("select proname, proacl::text, prosecdef, proconfig from pg_proc"
                          " where pronamespace = 'pgbatch'::regnamespace order by 1").fetchall()
    conn.execute("create or replace function pgbatch.cancel_job(job_id uuid) returns text"
                 " language sql as $$ select 'x' $$")  # resets SECURITY DEFINER and SET
    conn.execute("select pgbatch._apply_privileges()")
    conn.execute("select pgbatch._apply_privileges()")
    after = conn.execute("select proname, proacl::text, prosecdef, proconfig from pg_proc"
                         " where pronamespace = 'pgbatch'::regnamespace order by 1").fetchall()
    assert after == before


def test_no_group_role_has_a_table_privilege_but_admin_reads_columns_without_tokens(
        conn: Conn) -> None:
    tables = [r[0] for r in conn.execute(
        "select relname from pg_class where relnamespace = 'pgbatch'::regnamespace"
        " and relkind = 'r' and relname <> 'alembic_version'").fetchall()]
    for table in tables:
        for role in ("pgbatch_producer", "pgbatch_worker", "pgbatch_admin", "pgbatch_viewer"):
            for priv in ("insert", "update", "delete", "truncate"):
                assert not scalar(conn, "select has_table_privilege(%s, %s, %s)",
                                  [role, f"pgbatch.{table}", priv]), (role, table, priv)
        for role in ("pgbatch_producer", "pgbatch_worker"):
            assert not scalar(conn, "select has_any_column_privilege(%s, %s, 'select')",
                              [role, f"pgbatch.{table}"]), (role, table)
    for role in ("pgbatch_admin", "pgbatch_viewer"):
        for table, column in (("job", "claim_token"), ("job", "settled_token"),
                              ("job_archive", "claim_token")):
            assert not scalar(conn, "select has_column_privilege(%s, %s, %s, 'select')",
                              [role, f"pgbatch.{table}", column])
        assert scalar(conn, "select has_column_privilege(%s, 'pgbatch.job', 'payload',"
                            " 'select')", [role])


# -- producer --------------------------------------------------------------------------------

def test_a_producer_enqueues_and_reads_stats_but_cannot_claim_settle_or_read_jobs(
        conn: Conn, as_role: dict[str, Conn]) -> None:
    producer = as_role["producer"]
    jid = _enqueue(producer)
    ids = scalar(producer, "select pgbatch.enqueue_many(%s)",
                 [Jsonb([{"queue": "q", "payload": {}}, {"queue": "q", "payload": {}}])])
    assert len(ids) == 2
    stats = producer.execute("select pending from pgbatch.queue_stats('q')").fetchone()
    assert stats == (3,)
    assert scalar(producer, "select pgbatch.kv_get('nothing')") is None
    assert scalar(producer, "select pgbatch.channel_name('q')").startswith("pgbatch_q_")
    assert scalar(producer, "select pgbatch.cancel_job(%s)", [ids[0]]) is not None

    _denied(producer, "select * from pgbatch.claim('q')")
    claimed_id, token = _claim(conn)
    assert claimed_id == jid
    for call in ("select pgbatch.ack(%s, %s)", "select pgbatch.nack(%s, %s)",
                 "select pgbatch.dead_letter(%s, %s)", "select pgbatch.renew_lease(%s, %s)",
                 "select pgbatch.release(%s, %s)"):
        _denied(producer, call, [jid, token])
    _denied(producer, "select pgbatch.reap_expired()")
    _denied(producer, "select payload from pgbatch.job")
    _denied(producer, "select claim_token from pgbatch.job")
    _denied(producer, "select * from pgbatch.job_archive")
    _denied(producer, "update pgbatch.job set lease_expires_at = now()")
    _denied(producer, "select pgbatch._announce('q', 1)")
    _denied(producer, "select pgbatch._expire_claim(j, 'x') from pgbatch.job j")
    _denied(producer, "select pgbatch._apply_privileges()")
    _denied(producer, "select pgbatch.pause_queue('q')")
    assert _state(conn, jid) == "claimed"


# -- worker ----------------------------------------------------------------------------------

def test_a_worker_claims_settles_renews_and_reaps_through_the_sql_api(
        conn: Conn, as_role: dict[str, Conn]) -> None:
    worker = as_role["worker"]
    first = _enqueue(worker)  # a worker may do what a producer may
    second = _enqueue(worker)
    third = _enqueue(worker)
    jid, token = _claim(worker)
    assert jid == first
    assert scalar(worker, "select pgbatch.renew_lease(%s, %s, '1 minute')", [jid, token])
    effects = {"enqueue": [{"queue": "next", "payload": {}}], "kv_put": {"k": {"v": 1}}}
    follow_ups = scalar(worker, "select pgbatch.ack(%s, %s, %s)", [jid, token, Jsonb(effects)])
    assert len(follow_ups) == 1
    assert scalar(worker, "select pgbatch.kv_get('k')") == {"v": 1}
    jid, token = _claim(worker)
    assert jid == second
    worker.execute("select pgbatch.nack(%s, %s, retry_at => now())", [jid, token])
    jid, token = _claim(worker)
    assert jid in (second, third)
    expire_lease(conn, jid)
    assert scalar(worker, "select pgbatch.reap_expired()") == 1
    worker.execute("select pgbatch.announce_due()")
    worker.execute("select pgbatch.compact_counters()")
    worker.execute("select pgbatch.sweep_retention()")
    boot = uuid.uuid4()
    worker.execute("select pgbatch.register_node('n1', %s)", [boot])
    worker.execute("select pgbatch.heartbeat_node('n1', %s)", [boot])
    worker.execute("select pgbatch.deregister_node('n1', %s)", [boot])
    _denied(worker, "select claim_token from pgbatch.job")
    _denied(worker, "select pgbatch.pause_queue('q')")
    _denied(worker, "select pgbatch.requeue_dead_job(%s)", [first])
    _denied(worker, "select pgbatch._announce('q', 1)")


def test_a_worker_login_runs_a_worker_end_to_end_with_no_table_privilege(
        db: TestDatabase, conn: Conn) -> None:
    assert not scalar(conn, "select has_table_privilege(%s, 'pgbatch.job', 'select')"
                            " or has_table_privilege(%s, 'pgbatch.job', 'update')",
                      [TEST_WORKER_LOGIN, TEST_WORKER_LOGIN])
    with app_on(db.dsn) as app, LoopThread() as lt:
        assert make_conninfo(app.dsn) != make_conninfo(db.dsn)

        @app.task(queue="rx-next")
        def next_step(n: int) -> None:
            return None

        fails = {"left": 1}

        @app.task(queue="rx", backoff_base=0.01)
        def step(n: int) -> AckEffects:
            if n == 2 and fails["left"]:
                fails["left"] -= 1
                raise RuntimeError("once")
            return AckEffects(enqueue=[next_step.request({"n": n + 1})], kv_put={f"n{n}": n})

        lt.start(Worker(app, ["rx"], concurrency=2, poll_interval=0.2,
                        maintenance_config=MaintenanceConfig(interval=0.1)))
        done = [step.defer(n=1), step.defer(n=2)]
        for jid in done:
            wait_until(functools.partial(archive_row, conn, jid), 20, "the jobs to be acked")
        # a claim whose worker vanished: the running worker's maintenance reaps it
        stray = _enqueue(conn, "rx-stray")
        _claim(conn, "rx-stray")
        expire_lease(conn, stray)
        wait_until(lambda: _state(conn, stray) == "pending", 20,
                   "the maintenance loop to reap the expired claim")
        kv = app.client.kv_get("n2")
    archived = [archive_row(conn, j) for j in done]
    assert [r["state"] if r else None for r in archived] == ["done", "done"]
    assert archived[1] is not None
    assert archived[1]["attempt"] == 2
    assert kv == 2


# -- admin -----------------------------------------------------------------------------------

def test_an_admin_pauses_resumes_and_requeues_but_cannot_claim_or_read_tokens(
        conn: Conn, as_role: dict[str, Conn]) -> None:
    admin = as_role["admin"]
    jid = _enqueue(conn)
    _, token = _claim(conn)
    conn.execute("select pgbatch.dead_letter(%s, %s, 'bad')", [jid, token])
    admin.execute("select pgbatch.pause_queue('q')")
    admin.execute("select pgbatch.requeue_dead_job(%s)", [jid])
    assert conn.execute("select * from pgbatch.claim('q')").fetchall() == []  # paused
    admin.execute("select pgbatch.resume_queue('q')")
    admin.execute("select pgbatch.set_queue_notify('q', true)")
    assert admin.execute("select id, payload from pgbatch.job").fetchall() == [
        (jid, {"secret": "s"})]
    assert scalar(admin, "select pending from pgbatch.queue_stats('q')") == 1
    _denied(admin, "select claim_token from pgbatch.job")
    _denied(admin, "select * from pgbatch.job_archive")  # * includes the token
    _denied(admin, "select * from pgbatch.claim('q')")
    _denied(admin, "update pgbatch.job set priority = 9")


# -- viewer ----------------------------------------------------------------------------------

def test_every_public_function_is_classified_for_the_viewer(conn: Conn) -> None:
    rows = conn.execute(
        "select p.proname, has_function_privilege('pgbatch_viewer', p.oid, 'execute')"
        " from pg_proc p where p.pronamespace = 'pgbatch'::regnamespace"
        " and left(p.proname, 1) <> '_'").fetchall()
    names = {name for name, _ in rows}
    assert not FOR_VIEWER & NOT_FOR_VIEWER
    assert names - FOR_VIEWER - NOT_FOR_VIEWER == set(), "classify these for the viewer"
    assert {name for name, may in rows if may} == FOR_VIEWER & names
    assert names >= FOR_VIEWER
    # the viewer is a member of no other role, and admin has every right the viewer has
    assert scalar(conn, "select count(*) from pg_auth_members"
                        " where member = 'pgbatch_viewer'::regrole") == 0
    assert not scalar(conn, "select bool_or(has_function_privilege('pgbatch_viewer', p.oid,"
                            " 'execute') and not has_function_privilege('pgbatch_admin', p.oid,"
                            " 'execute')) from pg_proc p"
                            " where p.pronamespace = 'pgbatch'::regnamespace")


def test_no_function_the_viewer_may_call_returns_a_token(conn: Conn) -> None:
    rows = conn.execute(
        "select p.proname, coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),"
        " coalesce((select array_agg(a.attname::text) from pg_attribute a"
        "           where a.attrelid = t.typrelid and a.attnum > 0), '{}')"
        " from pg_proc p join pg_type t on t.oid = p.prorettype"
        " where p.pronamespace = 'pgbatch'::regnamespace"
        " and has_function_privilege('pgbatch_viewer', p.oid, 'execute')").fetchall()
    assert {r[0] for r in rows} == FOR_VIEWER
    for name, arg_names, modes, returned_columns in rows:
        outputs = [n for n, m in zip(arg_names, modes, strict=False) if m in ("o", "b", "t")]
        assert not [c for c in [*outputs, *returned_columns] if "token" in c], name


def test_a_viewer_may_call_no_function_that_is_not_a_read(conn: Conn,
                                                          as_role: dict[str, Conn]) -> None:
    viewer = as_role["viewer"]
    jid = _enqueue(conn)
    _claim(conn)
    before = state_snapshot(conn)
    calls = conn.execute(
        "select p.proname, p.prokind, coalesce(string_agg('null::' || format_type(t, null),"
        " ', ' order by n), '') from pg_proc p"
        " left join lateral unnest(p.proargtypes::oid[]) with ordinality a(t, n) on true"
        " where p.pronamespace = 'pgbatch'::regnamespace and left(p.proname, 1) <> '_'"
        " group by p.oid, p.proname, p.prokind order by p.proname").fetchall()
    tried = 0
    for name, kind, args in calls:
        if name in FOR_VIEWER:
            continue
        verb = "call" if kind == "p" else "select"
        _denied(viewer, f"{verb} pgbatch.{name}({args})")
        tried += 1
    assert tried >= len(NOT_FOR_VIEWER)
    _denied(viewer, "select claim_token from pgbatch.job")
    _denied(viewer, "update pgbatch.job set priority = 9")
    _denied(viewer, "delete from pgbatch.job_archive")
    _denied(viewer, "select pgbatch._apply_privileges()")
    assert state_snapshot(conn) == before
    assert _state(conn, jid) == "claimed"


def test_a_viewer_reads_jobs_payloads_and_reports(conn: Conn, as_role: dict[str, Conn]) -> None:
    viewer = as_role["viewer"]
    jid = _enqueue(conn)
    assert scalar(viewer, "select payload from pgbatch.get_job(%s)", [jid]) == {"secret": "s"}
    assert viewer.execute("select id from pgbatch.list_jobs()").fetchall() == [(jid,)]
    assert scalar(viewer, "select pending from pgbatch.queue_stats('q')") == 1
    for query in ("select * from pgbatch.web_nodes()", "select * from pgbatch.metrics()",
                  "select * from pgbatch.schedules()", "select * from pgbatch.approvals()",
                  "select * from pgbatch.job_executions_page()", "select pgbatch.limits()",
                  "select pgbatch.now()", "select * from pgbatch.list_tasks()"):
        viewer.execute(query).fetchall()
    assert viewer.execute("select id, payload from pgbatch.job").fetchall() == [
        (jid, {"secret": "s"})]
    with viewer.cursor() as cur:
        cur.execute("select * from pgbatch.get_job(%s)", [jid])
        assert cur.description is not None
        assert not [c.name for c in cur.description if "token" in c.name]


# -- the clock and the functions themselves -------------------------------------------------

def test_no_group_role_can_move_the_clock(conn: Conn, as_role: dict[str, Conn]) -> None:
    far = datetime(2100, 1, 1, tzinfo=UTC)
    conn.execute("set pgbatch.fake_now = '2100-01-01 00:00Z'")
    assert scalar(conn, "select pgbatch.now()") == far  # superuser sessions may (tests)
    conn.execute("reset pgbatch.fake_now")
    jid = _enqueue(conn)
    _claim(conn)
    for kind, c in as_role.items():
        c.execute("set pgbatch.fake_now = '2100-01-01 00:00Z'")
        assert scalar(c, "select pgbatch.now()") < far, kind
        assert scalar(c, "select pgbatch.now() = now()"), kind
    assert scalar(as_role["worker"], "select pgbatch.reap_expired()") == 0
    assert _state(conn, jid) == "claimed"
    for kind, c in as_role.items():
        with pytest.raises(DENIED):
            c.execute("create or replace function pgbatch.now() returns timestamptz"
                      " language sql as $$ select timestamptz '2100-01-01' $$")
        with pytest.raises(DENIED):
            c.execute("create function pgbatch.mine() returns int language sql as 'select 1'")
        with pytest.raises(DENIED):
            c.execute("alter function pgbatch.claim(text, integer, interval, text)"
                      " security invoker")
        assert kind


def test_a_temporary_object_cannot_shadow_what_a_security_definer_function_uses(
        conn: Conn, as_role: dict[str, Conn]) -> None:
    worker = as_role["worker"]
    worker.execute("create temporary table job (id uuid)")
    worker.execute("create temporary table meta (key text, value text)")
    jid = _enqueue(worker)
    assert _claim(worker)[0] == jid
    assert _state(conn, jid) == "claimed"


# -- the CLI ---------------------------------------------------------------------------------

def test_pgbatch_roles_prints_the_sql_a_dba_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["roles", "--worker", "app_worker", "--role-prefix", "myapp_"]) == 0
    out = capsys.readouterr().out
    assert 'create role "myapp_worker" nologin;' in out
    assert 'grant "myapp_producer" to "myapp_worker";' in out
    assert "set pgbatch.role_prefix = 'myapp_';" in out
    assert "select pgbatch._apply_privileges();" in out
    assert 'grant "myapp_worker" to "app_worker";' in out


def test_pgbatch_roles_apply_creates_and_grants_a_login(
        db: TestDatabase, conn: Conn, capsys: pytest.CaptureFixture[str]) -> None:
    login = f"pgbatch_t_login_{uuid.uuid4().hex[:8]}"
    try:
        assert cli_main(["--dsn", db.dsn, "roles", "--apply", "--create-logins",
                         "--producer", login]) == 0
        assert f"granted pgbatch_producer to {login}" in capsys.readouterr().out
        with psycopg.connect(make_conninfo(db.dsn, user=login), autocommit=True) as c:
            _enqueue(c)
            _denied(c, "select * from pgbatch.claim('q')")
    finally:
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(login)))


def test_pgbatch_roles_prints_the_viewer_role_and_its_grant(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["roles", "--viewer", "dashboard"]) == 0
    out = capsys.readouterr().out
    assert 'create role "pgbatch_viewer" nologin;' in out
    assert 'grant "pgbatch_viewer" to "dashboard";' in out
    assert 'to "pgbatch_viewer";' not in out  # a member of no other role


def test_pgbatch_roles_apply_grants_a_viewer_login(
        db: TestDatabase, conn: Conn, capsys: pytest.CaptureFixture[str]) -> None:
    login = f"pgbatch_t_view_{uuid.uuid4().hex[:8]}"
    jid = _enqueue(conn)
    try:
        assert cli_main(["--dsn", db.dsn, "roles", "--apply", "--create-logins",
                         "--viewer", login]) == 0
        assert f"granted pgbatch_viewer to {login}" in capsys.readouterr().out
        with psycopg.connect(make_conninfo(db.dsn, user=login), autocommit=True) as c:
            assert c.execute("select id from pgbatch.list_jobs()").fetchall() == [(jid,)]
            _denied(c, "select pgbatch.enqueue('q', '{}')")
            _denied(c, "select pgbatch.cancel_job(%s)", [jid])
        capsys.readouterr()
        viewer_dsn = make_conninfo(db.dsn, user=login)
        assert cli_main(["--dsn", viewer_dsn, "jobs", "list"]) == 0
        assert str(jid) in capsys.readouterr().out
        assert cli_main(["--dsn", viewer_dsn, "jobs", "show", str(jid)]) == 0
        assert cli_main(["--dsn", viewer_dsn, "status"]) == 0
    finally:
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(login)))
    assert _state(conn, jid) == "pending"


def test_a_viewer_added_later_takes_the_prefix_the_other_roles_have(conn: Conn) -> None:
    """Set up with --role-prefix before the viewer existed: the upgrade names it alike."""
    prefix = f"v{uuid.uuid4().hex[:6]}_"
    names = _roles.names_for_prefix(prefix)
    conn.execute("delete from pgbatch.meta where key = 'role.viewer'")
    conn.execute("update pgbatch.meta set value = %s || substr(key, 6) where key like 'role.%%'",
                 [prefix])
    try:
        conn.execute("select pgbatch._apply_privileges()")
        assert _roles.role_names(conn) == names
        assert scalar(conn, "select has_function_privilege(%s, 'pgbatch.get_job(uuid)',"
                            " 'execute')", [names.viewer])
        assert not scalar(conn, "select has_function_privilege(%s, 'pgbatch.cancel_job(uuid)',"
                                " 'execute')", [names.viewer])
    finally:
        conn.execute("drop schema pgbatch cascade")
        for name in names.all():
            if scalar(conn, "select count(*) from pg_roles where rolname = %s", [name]):
                conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def test_the_dba_script_sets_up_roles_that_a_role_without_createrole_could_not(
        db: TestDatabase, conn: Conn) -> None:
    """The owner may not create roles: apply() warns with the SQL; psql runs it as a DBA."""
    owner = f"pgbatch_t_owner_{uuid.uuid4().hex[:8]}"
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    names = _roles.names_for_prefix(prefix)
    conn.execute(sql.SQL("create role {} login").format(sql.Identifier(owner)))
    try:
        conn.execute(sql.SQL("grant create on database {} to {}").format(
            sql.Identifier(db.name), sql.Identifier(owner)))
        conn.execute(sql.SQL("alter schema pgbatch owner to {}").format(sql.Identifier(owner)))
        for kind, name in conn.execute(
                "select case when prokind = 'p' then 'procedure' else 'function' end,"
                " oid::regprocedure::text from pg_proc"
                " where pronamespace = 'pgbatch'::regnamespace").fetchall():
            conn.execute(sql.SQL(f"alter {kind} {name} owner to {{}}").format(
                sql.Identifier(owner)))
        for (rel,) in conn.execute("select oid::regclass::text from pg_class where relnamespace"
                                   " = 'pgbatch'::regnamespace and relkind = 'r'").fetchall():
            conn.execute(sql.SQL(f"alter table {rel} owner to {{}}").format(sql.Identifier(owner)))
        with psycopg.connect(make_conninfo(db.dsn, user=owner), autocommit=True) as oc:
            warnings = _roles.apply(oc, prefix)
            assert warnings
            assert f"create role {names.worker} nologin;" in warnings[0]
            assert _roles.missing_roles(oc, names) == list(names.all())
        script = _roles.setup_sql(names, prefix=prefix).split("-- 2.")[0]
        psql = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-d", db.dsn],
                              input=script, text=True, capture_output=True, check=False)
        if psql.returncode == 127:  # pragma: no cover
            pytest.skip("no psql")
        assert psql.returncode == 0, psql.stderr
        with psycopg.connect(make_conninfo(db.dsn, user=owner), autocommit=True) as oc:
            assert _roles.apply(oc) == []
        assert scalar(conn, "select has_function_privilege(%s, 'pgbatch.claim(text, integer,"
                            " interval, text)', 'execute')", [names.worker])
        assert not scalar(conn, "select has_function_privilege(%s, 'pgbatch.claim(text,"
                                " integer, interval, text)', 'execute')", [names.producer])
    finally:
        conn.execute("drop schema pgbatch cascade")
        for name in (*names.all(), owner):
            if scalar(conn, "select count(*) from pg_roles where rolname = %s", [name]):
                conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def test_login_dsn_makes_a_worker_login_that_is_not_the_owner(db: TestDatabase,
                                                              conn: Conn) -> None:
    dsn = _roles.login_dsn(db.dsn)
    assert _roles.login_dsn(db.dsn) == dsn  # the second call finds the role
    with psycopg.connect(dsn, autocommit=True) as c:
        assert scalar(c, "select current_user") == _roles.EMBEDDED_LOGIN
        assert not scalar(c, "select rolsuper from pg_roles where rolname = current_user")
        _enqueue(c)
        assert len(c.execute("select * from pgbatch.claim('q')").fetchall()) == 1
        _denied(c, "select pgbatch.pause_queue('q')")
    conn.execute("drop schema pgbatch cascade")
    assert _roles.login_dsn(db.dsn) == db.dsn  # not migrated: the caller's check says so


def test_the_demo_on_the_embedded_server_runs_its_worker_as_a_login_role(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    xdg = short_tmp_dir("pgbatch-roles-")
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    monkeypatch.delenv("PGBATCH_DSN", raising=False)
    server = PgServer.embedded(default_data_dir())
    try:
        assert cli_main(["demo", "--jobs", "10", "--concurrency", "2"]) == 0
        assert "migrated the database" in capsys.readouterr().out
        with psycopg.connect(server.dsn(), autocommit=True) as c:
            member = c.execute(
                "select pg_has_role(%s, 'pgbatch_worker', 'member'),"
                " (select rolsuper from pg_roles where rolname = %s)",
                [_roles.EMBEDDED_LOGIN, _roles.EMBEDDED_LOGIN]).fetchone()
            assert member == (True, False)
            # the demo's kv writes and acks were made through pgbatch functions by that role
            assert scalar(c, "select count(*) from pgbatch.job_archive where state = 'done'") > 0
    finally:
        server.destroy()
        shutil.rmtree(xdg, ignore_errors=True)


def test_migrate_by_a_role_without_createrole_prints_the_sql_a_dba_runs(
        pg_server: PgTestServer, capsys: pytest.CaptureFixture[str]) -> None:
    owner = f"pgbatch_t_mig_{uuid.uuid4().hex[:8]}"
    prefix = f"m{uuid.uuid4().hex[:6]}_"
    names = _roles.names_for_prefix(prefix)
    dbname = f"pgbatch_roles_{uuid.uuid4().hex[:8]}"
    admin = pg_server.admin_dsn()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("create role {} login").format(sql.Identifier(owner)))
        c.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(dbname),
                                                                 sql.Identifier(owner)))
    try:
        dsn = make_conninfo(pg_server.admin_dsn(dbname), user=owner)
        capsys.readouterr()
        assert cli_main(["--dsn", dsn, "migrate", "--role-prefix", prefix]) == 0
        out, err = capsys.readouterr()
        assert "applied 0003_roles" in out
        assert f"the group role(s) {', '.join(names.all())} do not exist" in err
        assert f'create role "{names.worker}" nologin;' in err
        assert "select pgbatch._apply_privileges();" in err
        with psycopg.connect(pg_server.admin_dsn(dbname), autocommit=True) as c:
            assert not scalar(c, "select bool_or(has_function_privilege('public', p.oid,"
                                 " 'execute')) from pg_proc p"
                                 " where pronamespace = 'pgbatch'::regnamespace")
            assert _roles.role_names(c) == names
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(dbname)))
            c.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(owner)))
