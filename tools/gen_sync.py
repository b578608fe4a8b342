"""Derive the sync client (pgbatch/_client.py) from the async one.

Usage: python tools/gen_sync.py [--check]
With --check, exit 1 when pgbatch/_client.py differs from what it would write.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Each async source and the sync module derived from it.
PAIRS = [(ROOT / "pgbatch" / "_aio_client.py", ROOT / "pgbatch" / "_client.py"),
         (ROOT / "pgbatch" / "_node_calls_aio.py", ROOT / "pgbatch" / "_node_calls.py")]

REPLACEMENTS: list[tuple[str, str]] = [
    (r"pgbatch\._node_calls_aio import AsyncNodeCalls", "pgbatch._node_calls import NodeCalls"),
    (r"AsyncNodeCalls", "NodeCalls"),
    (r"AsyncConnectionPool", "ConnectionPool"),
    (r"AsyncConnection", "Connection"),
    (r"AsyncClient", "Client"),
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"from asyncio code \(psycopg ``Connection``\)",
     "from threads or plain code (psycopg ``Connection``)"),
    (r"\(asyncio\)", "(sync)"),
]


def generate(source: Path) -> str:
    """The sync module derived from the async ``source``."""
    text = source.read_text(encoding="utf-8")
    text = text.replace('"""AsyncClient:', '"""Client:', 1)
    text = text.replace('"""AsyncNodeCalls:', '"""NodeCalls:', 1)
    text = re.sub(r"This file is the source of the sync ``\w+`` too: ``tools/gen_sync.py``\n"
                  r"derives ``pgbatch/\w+\.py`` from it, and a test fails when the two drift.",
                  f"GENERATED from pgbatch/{source.name} by tools/gen_sync.py: do not edit.\n"
                  "A test fails when the two drift.", text)
    for pattern, repl in REPLACEMENTS:
        text = re.sub(pattern, repl, text)
    return text


def main() -> int:
    stale = 0
    for source, target in PAIRS:
        out = generate(source)
        if "--check" in sys.argv[1:]:
            if not target.exists() or target.read_text(encoding="utf-8") != out:
                print(f"{target} is out of date: run python tools/gen_sync.py", file=sys.stderr)
                stale = 1
            continue
        target.write_text(out, encoding="utf-8")
    return stale


if __name__ == "__main__":
    sys.exit(main())
