"""Derive the sync client (pgbatch/_client.py) from the async one.

Usage: python tools/gen_sync.py [--check]
With --check, exit 1 when pgbatch/_client.py differs from what it would write.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "pgbatch" / "_aio_client.py"
TARGET = ROOT / "pgbatch" / "_client.py"

REPLACEMENTS: list[tuple[str, str]] = [
    (r"AsyncConnectionPool", "ConnectionPool"),
    (r"AsyncConnection", "Connection"),
    (r"AsyncClient", "Client"),
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"from asyncio code \(psycopg ``Connection``\)",
     "from threads or plain code (psycopg ``Connection``)"),
    (r"\(asyncio\)", "(sync)"),
    (r"This file is the source of the sync ``Client`` too: ``tools/gen_sync.py``\n"
     r"derives ``pgbatch/_client.py`` from it, and a test fails when the two drift.",
     "GENERATED from pgbatch/_aio_client.py by tools/gen_sync.py: do not edit.\n"
     "A test fails when the two drift."),
]


def generate() -> str:
    text = SOURCE.read_text(encoding="utf-8")
    text = text.replace('"""AsyncClient:', '"""Client:', 1)
    for pattern, repl in REPLACEMENTS:
        text = re.sub(pattern, repl, text)
    return text


def main() -> int:
    out = generate()
    if "--check" in sys.argv[1:]:
        if TARGET.read_text(encoding="utf-8") != out:
            print(f"{TARGET} is out of date: run python tools/gen_sync.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(out, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
