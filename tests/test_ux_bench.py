"""``pgbatch bench`` writes its reports where it says, and its docs name no missing file.

Without ``--output`` the reports go under the user's data directory (never the
current directory); ``--help`` says so. The benchmark's docstrings, its report
note and ``bench-results/README.md`` describe the figures themselves and name
no file a user of the package does not have.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pgbatch.bench import _model, cli

ROOT = Path(__file__).resolve().parent.parent
MD_FILE = re.compile(r"[A-Za-z0-9_./-]+\.md\b")


def _args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_default_output_is_under_the_user_data_dir(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "data" / "pgbatch" / "bench-results"
    assert cli.default_output_dir() == base
    assert cli.output_path(_args()) == base / "latest.json"
    assert cli.output_path(_args("--quick")) == base / "quick.json"
    assert cli.output_path(_args("--only", "B2")) == base / "partial.json"
    given = cli.output_path(_args("--output", "here/r.json"))
    assert given == Path("here/r.json")
    assert cli.output_path(_args("--output", "-")) is None


def test_help_says_where_reports_go(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert cli.main(["--help"]) == 0
    out = "".join(capsys.readouterr().out.split())  # argparse wraps long paths anywhere
    assert f"{tmp_path / 'data' / 'pgbatch' / 'bench-results'}/latest.json" in out
    assert "neverthecurrentdirectory" in out


def _missing_md(text: str, *bases: Path) -> set[str]:
    return {name for name in MD_FILE.findall(text)
            if not any((base / name).exists() for base in bases)}


def test_bench_docs_name_no_missing_file() -> None:
    bench_dir = ROOT / "pgbatch" / "bench"
    for module in sorted(bench_dir.glob("*.py")):
        text = module.read_text(encoding="utf-8")
        assert "PERFORMANCE.md" not in text, module.name
        assert "ARCHITECTURE.md" not in text, module.name
    assert "PERFORMANCE.md" not in _model.ANCHOR_NOTE
    readme = ROOT / "bench-results" / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert _missing_md(text, readme.parent, ROOT) == set()
