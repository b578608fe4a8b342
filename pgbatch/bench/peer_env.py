"""The peers' interpreter for ``pgbatch bench --peers``: a virtualenv of its own.

The peers (PGQueuer, Procrastinate) are never dependencies of pgbatch. The benchmark
runs them in a Python that can import them: ``--peers-python PATH`` when given; else
this interpreter when the ``bench-peers`` extra is installed
(``pip install 'pgbatch[bench-peers]'``); else a virtualenv the benchmark creates once
under the user's cache directory (``<cache dir>/pgbatch/bench-peers-venv``) with
``pip install`` of :data:`PEER_REQUIREMENTS` (pip's own index settings apply).
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import platformdirs
from psycopg.conninfo import conninfo_to_dict

#: What the peers' virtualenv holds (the versions the anchors were measured with).
PEER_REQUIREMENTS = ("pgqueuer[asyncpg,psycopg]==1.6.*", "procrastinate==3.10.*")

#: Each peer library the benchmark measures, and the modules it needs.
PEER_LIBS: dict[str, tuple[str, ...]] = {
    "pgqueuer-asyncpg": ("pgqueuer", "asyncpg"),
    "pgqueuer-psycopg": ("pgqueuer", "psycopg"),
    "procrastinate": ("procrastinate",),
}

#: The driver program the peers' interpreter runs (it imports no pgbatch module).
DRIVER = Path(__file__).with_name("peer_driver.py")


@dataclass(frozen=True)
class PeerEnv:
    """The interpreter that runs the peers, and which of them it can import."""

    python: Path
    libs: tuple[str, ...]
    versions: dict[str, str]


def default_venv() -> Path:
    """Where the benchmark keeps the peers' virtualenv."""
    return Path(platformdirs.user_cache_dir("pgbatch")) / "bench-peers-venv"


def _importable(python: Path, modules: tuple[str, ...]) -> bool:
    probe = subprocess.run([str(python), "-c", "import " + ", ".join(modules)],
                           capture_output=True, timeout=120, check=False)
    return probe.returncode == 0


def _versions(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json\n"
            "out = {}\n"
            "for name in ('pgqueuer', 'procrastinate', 'asyncpg', 'psycopg'):\n"
            "    try: out[name] = m.version(name)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    if proc.returncode != 0:
        return {}
    data: dict[str, str] = json.loads(proc.stdout)
    return data


def _libs(python: Path) -> tuple[str, ...]:
    return tuple(lib for lib, mods in PEER_LIBS.items() if _importable(python, mods))


def _create(path: Path, log: Callable[[str], None]) -> Path:
    log(f"creating the peers' virtualenv in {path} ({', '.join(PEER_REQUIREMENTS)})")
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS],
                   check=True, timeout=1800)
    return python


def find_peer_env(python: str | None, log: Callable[[str], None]) -> PeerEnv:
    """The peers' interpreter: ``python`` when given, this one with the extra, else the
    benchmark's own virtualenv (created on first use)."""
    if python:
        chosen = Path(python)
    elif all(_importable(Path(sys.executable), mods) for mods in PEER_LIBS.values()):
        chosen = Path(sys.executable)
    else:
        path = default_venv()
        chosen = path / "bin" / "python"
        if not chosen.exists() or not _libs(chosen):
            chosen = _create(path, log)
    return PeerEnv(chosen, _libs(chosen), _versions(chosen))


def dsn_url(dsn: str) -> str:
    """``dsn`` (a libpq keyword string or URL) as a ``postgresql://`` URL, which both
    asyncpg and psycopg accept."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return dsn
    p = conninfo_to_dict(dsn)
    user = quote(str(p.get("user") or ""), safe="")
    password = p.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = str(p.get("host") or "")
    port = str(p.get("port") or "")
    db = quote(str(p.get("dbname") or ""), safe="")
    if host.startswith("/"):
        query = f"?host={quote(host, safe='')}" + (f"&port={port}" if port else "")
        return f"postgresql://{auth}/{db}{query}"
    return f"postgresql://{auth}{host}{':' + port if port else ''}/{db}"
