"""docs/design.md, "How the code is organised", names every module of the tree.

The first table lists every top-level module and subpackage of ``pgbatch/``;
the worker's table every module of ``pgbatch/worker/``. A module added
without its row (what it owns, what it may import) fails here. The same test
checks the size rule the structure keeps: no hand-written module of
``pgbatch/`` over about 400 lines (the generated sync clients aside).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pgbatch"
GENERATED = {"_client.py", "_node_calls.py"}
#: "About 400 lines": a module may run a little over while it is being split.
MAX_LINES = 420


def _section() -> str:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    start = text.index("## How the code is organised")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _rows(section: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


def test_every_top_level_module_and_subpackage_has_a_row() -> None:
    rows = _rows(_section())
    names = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    names |= {f"{p.name}/" for p in PACKAGE.iterdir()
              if p.is_dir() and (p / "__init__.py").exists()}
    assert names - rows == set(), "modules without a row in docs/design.md"
    worker_rows = {f"{m}.py" for m in _worker_modules()}
    assert rows - worker_rows - {"__init__"} - names == set(), "rows of modules that do not exist"


def _worker_modules() -> set[str]:
    return {p.stem for p in (PACKAGE / "worker").glob("*.py") if p.name != "__init__.py"}


def test_every_worker_module_has_a_row() -> None:
    rows = _rows(_section())
    assert {f"{m}.py" for m in _worker_modules()} - rows == set()


def test_no_hand_written_module_is_much_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if p.name not in GENERATED and "_migrations" not in p.parts
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
