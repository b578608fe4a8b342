"""Operating-system helpers of the embedded server: OS users, modes, ports, processes.

Nothing here knows about PostgreSQL's files; :mod:`pgbatch.embedded.datadir`
and :mod:`pgbatch.embedded.server` call these.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

#: The only address every server listens on.
HOST: Final = "127.0.0.1"

_AUTO_PORT_RANGE: Final = (20000, 32000)  # below Linux's ephemeral port range


class OsUserError(RuntimeError):
    """The OS user that should run the server does not exist and could not be created."""


def tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a text file, or a note that it is unreadable."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read log: {exc})"
    return "\n".join(data.splitlines()[-lines:])

def process_alive(pid: int) -> bool:
    """Return whether ``pid`` is a live (not zombie) postgres process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # no /proc: trust kill(0)
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    state = fields.get("State", "").strip()
    name = fields.get("Name", "").strip()
    return not state.startswith(("Z", "X")) and name.startswith("postgres")

def port_free(port: int) -> bool:
    """Return whether a listening socket could be bound to ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True

def pick_free_port() -> int:
    """Choose a free port, preferably below the kernel's range for outgoing connections."""
    low, high = _AUTO_PORT_RANGE
    for _ in range(100):
        port = random.randrange(low, high)
        if port_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])

def ensure_os_user(name: str) -> None:
    """Create a system user ``name`` (no home, no login shell) if it does not exist."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        return
    proc = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise OsUserError(
            f"could not create OS user {name!r}: {proc.stderr.strip() or proc.returncode}"
        ) from None

def make_parents_traversable(path: Path) -> None:
    """Add search permission for others (``o+x``) to every parent directory of ``path``."""
    for parent in reversed(path.absolute().parents):
        add_mode(parent, stat.S_IXOTH)

def add_mode(path: Path, bits: int) -> None:
    st = path.stat()
    if st.st_mode & bits != bits:
        path.chmod(stat.S_IMODE(st.st_mode) | bits)

@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (no locking where ``fcntl`` is missing)."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
