"""The README's Quick start, saved as ``quickstart.py``, works as the README says.

``python quickstart.py`` enqueues one job named ``quickstart.send_email`` (not
``__main__.send_email``), and ``pgbatch worker --app quickstart:app`` runs it
without enqueuing again on import. Scripts run as ``__main__`` get the task
name a worker's import gives, with a ``TaskNameWarning`` when it is guessed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from uuid import UUID

import pytest

from tests.conftest import TestDatabase
from tests.helpers import archive_row, scalar
from tests.worker_harness import wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)


def quick_start_snippet() -> str:
    """The first Python block of the README's "Quick start" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None, "the Quick start has no python block"
    return match.group(1)


def _env(dsn: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PGBATCH_DSN": dsn}


def _python(args: list[str], cwd: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(dsn), capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_quick_start_saved_as_a_script_enqueues_a_job_a_worker_runs_once(
        db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    (tmp_path / "quickstart.py").write_text(quick_start_snippet(), encoding="utf-8")
    enqueued = _python(["quickstart.py"], tmp_path, db.dsn)
    assert enqueued.returncode == 0, enqueued.stderr
    assert "Warning" not in enqueued.stderr
    job_id = UUID(enqueued.stdout.split()[-1])
    payload = scalar(conn, "select payload from pgbatch.job where id = %s", [job_id])
    assert payload["task"] == "quickstart.send_email"

    worker = subprocess.Popen(
        [sys.executable, "-m", "pgbatch", "worker", "--app", "quickstart:app",
         "--poll-interval", "0.5"], cwd=tmp_path, env=_env(db.dsn), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        row = wait_until(lambda: archive_row(conn, job_id), 60, "the worker to run the job")
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, err
    assert row is not None
    assert (row["state"], row["attempt"]) == ("done", 1)
    assert "sending 'welcome' to a@example.com" in out
    # importing the module in the worker enqueued nothing
    assert scalar(conn, "select count(*) from pgbatch.job where queue = 'emails'") == 0


SCRIPT = textwrap.dedent('''
    import pgbatch

    app = pgbatch.App("host=unused")


    @app.task
    def hello() -> None:
        return None


    print(hello.name)
''')


def test_a_script_outside_the_current_directory_is_named_after_its_file_with_a_warning(
        tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mytasks.py").write_text(SCRIPT, encoding="utf-8")
    ran = _python(["sub/mytasks.py"], tmp_path, "host=unused")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "mytasks.hello"
    assert "TaskNameWarning" in ran.stderr
    assert "pass name=" in ran.stderr


def test_a_module_run_with_python_m_is_named_after_the_module(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "jobs.py").write_text(SCRIPT, encoding="utf-8")
    ran = _python(["-m", "pkg.jobs"], tmp_path, "host=unused")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "pkg.jobs.hello"
    assert "Warning" not in ran.stderr


def test_a_task_defined_without_a_file_keeps_main_and_warns(tmp_path: Path) -> None:
    ran = _python(["-c", SCRIPT], tmp_path, "host=unused")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "__main__.hello"
    assert "TaskNameWarning" in ran.stderr
    assert "no worker can import it" in ran.stderr
