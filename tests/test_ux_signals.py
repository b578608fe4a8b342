"""``asyncio.run(Worker(app).run())`` in a script shuts down as the CLI does.

The first SIGINT or SIGTERM stops claiming and lets the running job finish
(it is acked at its first attempt, no traceback); a second signal exits at
once with status 130 (SIGINT) or 143 (SIGTERM), leaving the claim to expire.
The same exit statuses hold for ``pgbatch worker``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import TestDatabase
from tests.helpers import archive_row, job_row
from tests.worker_harness import enqueue_jobs, wait_until, worker_dsn

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(90)

SCRIPT = textwrap.dedent('''
    import asyncio
    import sys

    import pgbatch

    app = pgbatch.App(sys.argv[1] if __name__ == "__main__" else None)  # CLI: $PGBATCH_DSN


    @app.task(queue="sig", name="sig.wait_for_stop", pass_context=True)
    async def wait_for_stop(ctx: pgbatch.JobContext, stubborn: bool = False) -> None:
        print("running", flush=True)
        while not ctx.stop_requested.is_set():  # a threading.Event: poll, do not block the loop
            await asyncio.sleep(0.01)
        print("stop-seen", flush=True)
        if stubborn:
            await asyncio.sleep(3600)


    if __name__ == "__main__":
        asyncio.run(pgbatch.Worker(app, ["sig"], concurrency=1, poll_interval=0.5,
                                   maintenance=False).run())
''')


def _start(dsn: str, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "sigworker.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), worker_dsn(dsn)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_line(stream: IO[str] | None, expected: str) -> None:
    assert stream is not None
    line = stream.readline().strip()
    assert line == expected, f"expected {expected!r} from the worker, got {line!r}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_python_worker_finishes_its_running_job_on_the_first_signal(
        db: TestDatabase, tmp_path: Path, sig: signal.Signals) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "sig", "sig.wait_for_stop")
    proc = _start(db.dsn, tmp_path)
    try:
        _read_line(proc.stdout, "running")
        proc.send_signal(sig)
        _read_line(proc.stdout, "stop-seen")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    row = wait_until(lambda: archive_row(conn, jid), 10, "the job to be archived")
    assert row is not None
    assert (row["state"], row["attempt"]) == ("done", 1)


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_exits_at_once_with_128_plus_the_signal(
        db: TestDatabase, tmp_path: Path, sig: signal.Signals, status: int) -> None:
    conn = db.connect()
    (jid,) = enqueue_jobs(conn, "sig", "sig.wait_for_stop", {"stubborn": True})
    proc = _start(db.dsn, tmp_path)
    try:
        _read_line(proc.stdout, "running")
        proc.send_signal(sig)
        _read_line(proc.stdout, "stop-seen")  # the first signal was handled
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    row = job_row(conn, jid)
    assert row is not None
    assert (row["state"], row["attempt"]) == ("claimed", 1)  # left to expire, not nacked


def test_the_cli_worker_exits_143_on_a_second_sigterm(db: TestDatabase, tmp_path: Path) -> None:
    conn = db.connect()
    (tmp_path / "sigworker.py").write_text(SCRIPT, encoding="utf-8")
    (jid,) = enqueue_jobs(conn, "sig", "sig.wait_for_stop", {"stubborn": True})
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PGBATCH_DSN": worker_dsn(db.dsn)}
    proc = subprocess.Popen([sys.executable, "-m", "pgbatch", "worker", "--app", "sigworker:app",
                             "--poll-interval", "0.5"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _read_line(proc.stdout, "running")
        proc.send_signal(signal.SIGTERM)
        _read_line(proc.stdout, "stop-seen")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    row = job_row(conn, jid)
    assert row is not None
    assert row["state"] == "claimed"
