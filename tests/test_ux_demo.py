"""``pgbatch demo`` on the embedded server says that it keeps running, and how to stop it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TestDatabase, short_tmp_dir

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(240)


def _pgbatch(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgbatch", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=200, check=False)


def test_the_demo_on_the_embedded_server_says_it_keeps_running() -> None:
    home = short_tmp_dir("pgb-demo-")
    env = {k: v for k, v in os.environ.items() if k != "PGBATCH_DSN"}
    env["XDG_DATA_HOME"] = str(home)
    try:
        ran = _pgbatch("demo", "--jobs", "4", "--concurrency", "2", env=env)
        assert ran.returncode == 0, ran.stderr
        assert "the embedded PostgreSQL server keeps running" in ran.stdout
        assert "`pgbatch server stop` stops it" in ran.stdout
        assert _pgbatch("server", "status", env=env).returncode == 0  # it does keep running
    finally:
        stopped = _pgbatch("server", "stop", env=env)
        status = _pgbatch("server", "status", env=env)
        shutil.rmtree(home, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert status.returncode == 3


def test_the_demo_on_a_given_database_says_nothing_of_the_embedded_server(
        db: TestDatabase) -> None:
    env = {**os.environ, "PGBATCH_DSN": db.dsn}
    ran = _pgbatch("demo", "--jobs", "4", "--concurrency", "2", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "embedded" not in ran.stdout
