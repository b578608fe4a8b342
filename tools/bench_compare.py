"""Compare two revisions with ``pgbatch bench`` in one interleaved run.

    python tools/bench_compare.py --base 5edc639 --head HEAD --only B2,B3 --rounds 3

Each revision is checked out into its own temporary worktree with its own
virtualenv; the rounds alternate base, head, base, head, ... (each round runs
``pgbatch bench --only ... --runs 1`` of one revision against its own embedded
server), so slow drifts of a shared machine hit both sides alike. Prints, per
figure, each side's median over the rounds and the ratio head/base, and writes
the table as markdown to ``--output`` (default
``bench-results/compare.md``). A figure whose unit is a rate (``/s``) is
better when higher; a latency or cost (ms, bytes, xact) when lower.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def _prepare(rev: str, base_dir: Path, label: str) -> tuple[Path, str]:
    """A detached worktree of ``rev`` with a virtualenv that has it installed."""
    tree = base_dir / label
    _run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT)
    sha = _run(["git", "rev-parse", "--short", rev], cwd=ROOT).strip()
    venv = tree / ".venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "-q", "-e", f"{tree}[test]"])
    return tree, sha


def _figures(report: Path) -> dict[str, tuple[str, str, float]]:
    data = json.loads(report.read_text(encoding="utf-8"))
    out: dict[str, tuple[str, str, float]] = {}
    for scenario in data["scenarios"]:
        for fig in scenario.get("figures") or []:
            if fig.get("median") is not None:
                out[fig["key"]] = (fig["label"], fig["unit"], float(fig["median"]))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the earlier revision")
    p.add_argument("--head", default="HEAD", help="the later revision (default HEAD)")
    p.add_argument("--only", default="B2,B3", help="scenarios (default B2,B3)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per revision (default 3)")
    p.add_argument("--quick", action="store_true", help="pass --quick to pgbatch bench")
    p.add_argument("--output", default=str(ROOT / "bench-results" / "compare.md"))
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pgbatch-compare-"))
    sides = {"base": args.base, "head": args.head}
    trees: dict[str, tuple[Path, str]] = {}
    try:
        for label, rev in sides.items():
            trees[label] = _prepare(rev, work, label)
        results: dict[str, list[dict[str, tuple[str, str, float]]]] = {"base": [], "head": []}
        for i in range(args.rounds):
            for label in ("base", "head"):
                tree, sha = trees[label]
                report = work / f"{label}-{i}.json"
                print(f"round {i + 1}/{args.rounds}: {label} ({sha})", file=sys.stderr)
                _run([str(tree / ".venv" / "bin" / "pgbatch"), "bench", "--only", args.only,
                      "--runs", "1", "--output", str(report),
                      *(["--quick"] if args.quick else [])], cwd=tree)
                results[label].append(_figures(report))
        lines = [f"# pgbatch bench: {trees['head'][1]} against {trees['base'][1]}",
                 "",
                 f"{args.rounds} interleaved rounds of `pgbatch bench --only {args.only} --runs 1`"
                 " per revision; medians over the rounds.",
                 "",
                 f"| figure | unit | base {trees['base'][1]} | head {trees['head'][1]} "
                 "| head/base |",
                 "| --- | --- | ---: | ---: | ---: |"]
        keys = [k for k in results["head"][0] if all(k in r for r in results["base"])]
        for key in keys:
            label, unit, _ = results["head"][0][key]
            base = statistics.median(r[key][2] for r in results["base"])
            head = statistics.median(r[key][2] for r in results["head"] if key in r)
            ratio = head / base if base else float("nan")
            lines.append(f"| {label} | {unit} | {base:,.3f} | {head:,.3f} | {ratio:.2f}x |")
        text = "\n".join(lines) + "\n"
        print(text)
        Path(args.output).write_text(text, encoding="utf-8")
    finally:
        for label in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(work / label)],
                           cwd=ROOT, check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
