"""``pgbatch web`` as users run it: a real process serving the test database."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

from pgbatch.cli import build_parser
from tests.conftest import TestDatabase
from tests.helpers import enqueue
from tests.web_helpers import dead_job, web_login_fixture  # noqa: F401 - fixtures

Conn = psycopg.Connection[Any]
READY = "Uvicorn running on"


@contextmanager
def pgbatch_web(*args: str) -> Iterator[str]:
    """``pgbatch web ARGS --port <free>``; yields its URL once uvicorn says it listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pgbatch", "web", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:  # the process's own log says when it listens
            lines.append(line)
            if READY in line:
                break
        else:
            raise AssertionError(f"pgbatch web exited {proc.wait()}: {''.join(lines)}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()


def test_pgbatch_web_serves_the_api_with_tokens(db: TestDatabase, conn: Conn,
                                                 web_login: str) -> None:
    job_id = dead_job(conn, "emails")
    dsn = make_conninfo(db.dsn, user=web_login)
    with pgbatch_web("--dsn", dsn, "--token", "ops:admin:s3cr3t-admin",
                     "--token", "ro:read:s3cr3t-read") as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/v1/queues").status_code == 401
        ro = {"Authorization": "Bearer s3cr3t-read"}
        assert http.get("/api/v1/queues", headers=ro).json()[0]["queue"] == "emails"
        assert http.post(f"/api/v1/jobs/{job_id}/retry", headers=ro).status_code == 403
        admin = {"Authorization": "Bearer s3cr3t-admin"}
        r = http.post(f"/api/v1/jobs/{job_id}/retry", headers=admin)
        assert r.status_code == 200, r.text
    assert conn.execute("select state from pgbatch.job where id = %s", [job_id]).fetchone() == (
        "pending",)


def test_pgbatch_web_read_only_refuses_actions(db: TestDatabase, conn: Conn,
                                               web_login: str) -> None:
    enqueue(conn, "emails")
    dsn = make_conninfo(db.dsn, user=web_login)
    with pgbatch_web("--dsn", dsn, "--read-only") as url, httpx.Client(base_url=url) as http:
        token = http.get("/api/v1/csrf").json()["token"]
        r = http.post("/api/v1/queues/emails/pause", headers={"X-CSRF-Token": token})
        assert r.status_code == 403
        assert r.json()["error"] == "ReadOnly"
        assert "pgbatch_queue_jobs" in http.get("/metrics").text
    assert conn.execute("select count(*) from pgbatch.queue where paused").fetchone() == (0,)


def test_web_help_names_every_option() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices: dict[str, argparse.ArgumentParser] = sub.choices  # type: ignore[assignment]
    text = choices["web"].format_help()
    for option in ("--host", "--port", "--token", "--read-only", "--root-path",
                   "--forwarded-allow-ips", "--dsn"):
        assert option in text
