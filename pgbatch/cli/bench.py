"""``pgbatch bench ...``: hands every argument to the benchmark's own command line.

The benchmark (``pgbatch.bench.cli.main(argv)``) parses its arguments itself,
so this command takes none: ``main`` passes it whatever follows ``bench``
(see ``BENCH`` in :mod:`pgbatch.cli.app`).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Final, cast

from pgbatch.cli.common import CliError, Commands, add_command

#: Where the benchmark's ``main(argv)`` may live, tried in order.
BENCH_MODULES: Final = ("pgbatch.bench.cli", "pgbatch.bench.__main__")


def _bench_main() -> Callable[[list[str]], int] | None:
    for name in BENCH_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        entry = getattr(module, "main", None)
        if callable(entry):
            return cast(Callable[[list[str]], int], entry)
    return None


def cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    """Delegate to ``pgbatch.bench.cli.main(argv)``."""
    entry = _bench_main()
    if entry is None:
        if "-h" in extra or "--help" in extra:
            print(args.parser.format_help())
            return 0
        raise CliError("benchmark not available: this installation has no pgbatch.bench module")
    if args.dsn and not any(a == "--dsn" or a.startswith("--dsn=") for a in extra):
        extra = ["--dsn", args.dsn, *extra]  # `pgbatch --dsn X bench` means `bench --dsn X`
    return int(entry(extra) or 0)


def register(commands: Commands) -> None:
    """Add ``bench`` (its arguments are left unparsed: ``pass_through`` marks it)."""
    p = add_command(
        commands, "bench", "run the benchmark (arguments are passed to pgbatch.bench)",
        "Run the benchmark: every argument after `bench` is passed to the benchmark's\n"
        "own command line (try `pgbatch bench --help`). A --dsn given before `bench`\n"
        "is passed on as the benchmark's --dsn; $PGBATCH_DSN is not used by it.",
        "examples:\n  pgbatch bench --help\n  pgbatch bench --quick", add_help=False,
        common=False)
    p.set_defaults(handler=None, pass_through=cmd_bench)
