"""docker-compose.yml: the healthcheck goes over TCP, the image is built once, no port clash.

Checked on the file's text, service by service (the machines the tests run on
have no Docker engine, and the test extra has no YAML parser).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")


def _service(name: str) -> str:
    """The lines of one service (two-space indented key under ``services:``)."""
    services = TEXT.split("\nservices:\n", 1)[1]
    match = re.search(rf"^  {name}:\n(.*?)(?=^  \S|^\S|\Z)", services,
                      flags=re.MULTILINE | re.DOTALL)
    assert match is not None, f"no service {name}"
    return match.group(1)


def _anchor() -> str:
    match = re.search(r"^x-pgbatch: &pgbatch\n(.*?)(?=^\S)", TEXT, flags=re.MULTILINE | re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_healthcheck_waits_for_tcp_not_the_init_servers_socket() -> None:
    (check,) = [line for line in _service("postgres").splitlines() if "pg_isready" in line]
    assert "-h 127.0.0.1" in check


def test_the_image_is_built_once_and_shared() -> None:
    assert re.search(r"^\s+build:", _service("migrate"), flags=re.MULTILINE)
    assert not re.search(r"^\s+build:", _service("worker"), flags=re.MULTILINE)
    assert not re.search(r"^\s+build:", _anchor(), flags=re.MULTILINE)
    assert re.search(r"^\s+image: \S+", _anchor(), flags=re.MULTILINE)  # both services' image
    assert "pull_policy: never" in _service("worker")


def test_migrate_restarts_on_failure() -> None:
    assert re.search(r"^\s+restart: on-failure", _service("migrate"), flags=re.MULTILINE)


def test_the_host_port_does_not_clash_with_a_local_postgresql() -> None:
    match = re.search(r'^\s+- "([\d.]+):(\d+):5432"', _service("postgres"), flags=re.MULTILINE)
    assert match is not None
    assert match.group(1) == "127.0.0.1"
    assert match.group(2) != "5432"
