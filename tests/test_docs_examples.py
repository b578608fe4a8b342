"""Every psql example of the docs runs as written; every python block runs or says why not.

Each ```sql block of README.md and of every page of docs/ (``doc_pages()``:
new pages are picked up) is run with ``psql -v ON_ERROR_STOP=1 -f`` on a
freshly migrated database, as a reader would paste it. Blocks of one
``group=`` (see tests/docs_helpers.py for the markers) share a database and
run in page order; ``setup=NAME`` runs ``SQL_SETUPS[NAME]`` first (only what
the page says the block assumes). Blocks that create roles (cluster-wide
objects) run inside a transaction that is rolled back.

Python blocks are run by tests/test_docs_python.py; here every one is
classified (a docs/ block without ``run`` or ``fragment="why"`` fails), every
fragment compiles, and an ``excerpt=`` fragment is checked against its file.
The pages point only at files that exist.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TestDatabase
from tests.docs_helpers import (
    ROOT,
    Block,
    all_blocks,
    doc_pages,
    group_id,
    groups,
    page_blocks,
    psql_path,
)

#: Hidden setup of sql blocks, by the name a ``setup=`` marker gives.
SQL_SETUPS: dict[str, str] = {
    # docs/schedules.md: the batch job `sync` a worker registered (a schedule launches it)
    "batch-job-sync": "select pgbatch.register_job('sync', "
                      "'{\"steps\": [{\"name\": \"pull\", \"kind\": \"tasklet\"}]}');",
    # docs/batch-pause.md: execution 42 of job `invoices`, paused before a worker claimed it
    "paused-execution-42": "select pgbatch.register_job('invoices', "
                           "'{\"steps\": [{\"name\": \"load\", \"kind\": \"tasklet\"}]}');\n"
                           "select setval(pg_get_serial_sequence('pgbatch.job_execution',"
                           " 'id'), 41);\n"
                           "select pgbatch.launch_job('invoices', '{}');\n"
                           "select * from pgbatch.pause_execution(42, 'doc-setup');",
}

SQL_GROUPS = [g for g in groups("sql") if not any("tested" in b.marker for b in g)]


def _psql(dsn: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([psql_path(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                           "-f", str(path)], capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_docs_have_psql_examples() -> None:
    pages = {blocks[0].page for blocks in SQL_GROUPS}
    assert {"README.md", "docs/roles.md", "docs/schedules.md"} <= pages


@pytest.mark.parametrize("blocks", SQL_GROUPS, ids=[group_id(g) for g in SQL_GROUPS])
def test_a_psql_example_runs_as_written(db: TestDatabase, tmp_path: Path,
                                        blocks: list[Block]) -> None:
    for block in blocks:
        setup = [SQL_SETUPS[name] for name in block.names("setup")]
        script = block.code
        if re.search(r"^\s*create role", script, flags=re.MULTILINE | re.IGNORECASE):
            script = f"begin;\n{script}\nrollback;\n"  # roles outlive the test database
        path = tmp_path / f"block{block.line}.sql"
        path.write_text("\n".join([*setup, script]), encoding="utf-8")
        ran = _psql(db.dsn, path)
        assert ran.returncode == 0, f"{block.where} failed:\n{ran.stderr}"
        assert "ERROR" not in ran.stderr, f"{block.where}: {ran.stderr}"


def test_a_block_run_by_its_own_test_names_a_test_that_reads_its_page() -> None:
    tested = [b for b in all_blocks("sql") if "tested" in b.marker]
    for block in tested:
        path = ROOT / block.marker["tested"]
        assert path.is_file(), f"{block.where}: no test file {block.marker['tested']}"
        assert block.page in path.read_text(encoding="utf-8"), block.where


def test_every_marker_names_a_known_sql_setup() -> None:
    unknown = [(b.where, name) for b in all_blocks("sql") for name in b.names("setup")
               if name not in SQL_SETUPS]
    assert unknown == []


def test_every_python_block_of_the_docs_runs_or_says_why_not() -> None:
    """A python block of docs/ needs ``run`` or ``fragment="why"``; README blocks run."""
    unclassified = [b.where for b in all_blocks("python")
                    if b.page != "README.md" and "run" not in b.marker
                    and "fragment" not in b.marker]
    assert unclassified == [], (
        "python blocks with neither <!-- pgbatch-doc: run --> nor "
        f"<!-- pgbatch-doc: fragment=\"why\" --> before them: {unclassified}")
    no_reason = [b.where for b in all_blocks("python")
                 if "fragment" in b.marker and not b.marker["fragment"].strip()]
    assert no_reason == [], f"fragments without a reason: {no_reason}"
    both = [b.where for b in all_blocks("python") if {"run", "fragment"} <= set(b.marker)]
    assert both == []


FRAGMENTS = [b for b in all_blocks("python") if "fragment" in b.marker]


def _top_level_names(source: str) -> set[str]:
    """What a module's top level defines or imports: functions, classes, names."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


@pytest.mark.parametrize("block", FRAGMENTS, ids=[b.where for b in FRAGMENTS])
def test_a_python_fragment_compiles_and_an_excerpt_is_in_its_file(block: Block) -> None:
    """A fragment compiles (``fragment=signature``: as a ``def``); an ``excerpt=FILE``
    fragment defines and imports only names that FILE has."""
    if block.marker["fragment"] == "signature":
        compile(f"def {block.code.strip()}: ...", block.where, "exec")
    else:
        compile(block.code, block.where, "exec")
    source = block.marker.get("excerpt")
    if not source:
        return
    missing = _top_level_names(block.code) - _top_level_names(
        (ROOT / source).read_text(encoding="utf-8"))
    assert missing == set(), f"{block.where} has names that {source} does not: {missing}"


def test_the_markers_parse() -> None:
    """A typo in a marker word fails here, not silently (parse_marker raises)."""
    for page in doc_pages():
        page_blocks(page)


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MENTIONED_PAGE = re.compile(r"`([A-Za-z0-9_./-]+\.md)`")


@pytest.mark.parametrize("page", doc_pages())
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
