"""``pgbatch bench --quick`` at a tiny scale runs every scenario and reports every figure.

No timing is asserted: the benchmark's figures are for people (and the JSON kept in
the repository), not for the test suite. This test only checks that the benchmark runs
end to end on the session's server and produces every figure, the markdown table and
the JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgbatch.bench import cli
from pgbatch.bench._model import Figure, ScenarioResult
from pgbatch.bench._peer_bars import best_peer, figure_key, peer_bar
from pgbatch.bench.peer_env import DRIVER, dsn_url
from tests.conftest import PgTestServer

#: Every figure a full selection must produce (B4 keys depend on the sizes).
EXPECTED = {
    "B0": {"B0.select1.c1", "B0.select1.c8", "B0.insert.c1", "B0.insert.c8", "B0.py_insert.c1",
           "B0.core.c1", "B0.core.c2", "B0.core_ids.c1", "B0.core_ids.c2",
           "B0.core.max.c1", "B0.core.max.c2", "B0.core.best"},
    "B1": {"B1.single", "B1.single_nonotify", "B1.batched", "B1.producers8",
           "B1.producers8_nonotify"},
    "B2": {f"B2.p{p}.{k}" for p in (1, 2) for k in (
        "jobs_per_s", "worker_cpu_ms_per_job", "xacts_per_job", "wal_bytes_per_job")},
    "B3": {"B3.p50", "B3.p95", "B3.p99", "B3.max"},
    "B5": {"B5.first", "B5.last", "B5.ratio", "B5.enqueue_rate", "B5.backlog_end",
           "B5.job_mb", "B5.archive_mb", "B5.dropped_share"},
    "B6": {"B6.batch.items_per_s", "B6.plain.items_per_s", "B6.ratio", "B6.python.items_per_s",
           "B6.python.ratio"},
    "B7": {"B7.seconds", "B7.decide_span_s", "B7.fires_per_schedule"},
    "B8": {"B8.p1.woken_per_process", "B8.p1.claims_per_job",
           "B8.p4.woken_per_process", "B8.p4.claims_per_job"},
    "B9": {"B9.jobs_api.first", "B9.jobs_api.deep", "B9.jobs_api.filtered", "B9.jobs_page",
           "B9.run_api", "B9.run_page", "B9.runs_api.deep"},
}


def test_quick_bench_produces_every_figure(pg_server: PgTestServer, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = cli.main(["--quick", "--scale", "0.05", "--soak-minutes", "0.05",
                     "--pgbench-seconds", "1", "--dsn", pg_server.admin_dsn(),
                     "--output", str(out)])
    assert code == 0, out.with_suffix(".md").read_text() if out.with_suffix(".md").exists() else ""
    doc = json.loads(out.read_text())
    assert doc["format"] == "pgbatch-bench/1"
    assert doc["mode"] == "quick"
    for key in ("cpu_model", "cpus_usable", "memory_mb", "postgresql", "python", "date"):
        assert doc["machine"][key], key
    assert doc["loadavg"]["start"] is not None
    by_id = {s["id"]: s for s in doc["scenarios"]}
    assert set(by_id) == {"B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"}
    for sid, scenario in by_id.items():
        assert scenario["status"] == "ok", (sid, scenario["error"])
        for fig in scenario["figures"]:
            assert fig["runs"], fig["key"]
            assert fig["median"] is not None, fig["key"]
            assert all(isinstance(v, (int, float)) for v in fig["runs"]), fig["key"]
        keys = {f["key"] for f in scenario["figures"]}
        assert EXPECTED.get(sid, set()) <= keys, (sid, EXPECTED.get(sid, set()) - keys)
    b4 = {f["key"] for f in by_id["B4"]["figures"]}
    assert any(k.startswith("B4.us.") for k in b4)
    assert any(k.startswith("B4.ratio.") for k in b4)
    assert doc["not_implemented"] == []
    b7 = {f["key"]: f for f in by_id["B7"]["figures"]}
    assert b7["B7.fires_per_schedule"]["pass"] is True     # fires = schedules, exactly
    # every figure with a bar got a verdict (the bars' references were all run)
    for scenario in doc["scenarios"]:
        for fig in scenario["figures"]:
            if fig["bars"]:
                assert fig["pass"] in (True, False), fig["key"]
    md = out.with_suffix(".md").read_text()
    assert "| id | figure | median |" in md
    assert "B5 soak, per bucket" in md


def test_module_entry_point_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "pgbatch.bench", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout
    assert "--soak-minutes" in proc.stdout


def test_unknown_scenario_is_an_argument_error() -> None:
    assert cli.main(["--only", "B99", "--output", "-"]) == 2


def test_peers_run_only_when_asked() -> None:
    assert "BP" not in cli._selected(None)[0]
    assert cli._selected(None, peers=True)[0][0] == "BP"
    assert cli._selected("B1", peers=True)[0] == ["BP", "B1"]
    assert cli._selected("BP,B1")[0] == ["BP", "B1"]


def _bp_result(median: float | None) -> ScenarioResult:
    res = ScenarioResult("BP", "peers")
    if median is not None:
        res.add(Figure(figure_key("pgqueuer-asyncpg", "enqueue_batched"), "BP", "x", "jobs/s",
                       runs=[median]))
    return res


def test_a_peer_bar_uses_the_side_by_side_figure_when_it_was_measured() -> None:
    results: dict[str, Any] = {"BP": _bp_result(40_000.0)}
    bar = peer_bar(results, "enqueue_batched", ">=", 1.5, 73_789.0, "batched enqueue",
                   lib="pgqueuer-asyncpg")
    assert bar.ref == "BP.pgqueuer_asyncpg.enqueue_batched"
    assert "side by side" in bar.text
    figures = {f.key: f for f in results["BP"].figures}
    assert bar.target(figures) == 60_000.0
    assert not bar.check(59_999.0, 60_000.0)


def test_a_peer_bar_falls_back_to_the_anchor() -> None:
    for results in ({}, {"BP": _bp_result(None)}):
        bar = peer_bar(results, "enqueue_batched", ">=", 1.5, 73_789.0, "batched enqueue",
                       lib="pgqueuer-asyncpg")
        assert bar.ref is None
        assert bar.value == 1.5 * 73_789.0
        assert "anchor" in bar.text


def test_the_best_peer_is_the_fastest_or_the_quickest() -> None:
    res = ScenarioResult("BP", "peers")
    for lib, rate, p50 in (("pgqueuer-asyncpg", 900.0, 2.0), ("procrastinate", 100.0, 1.5)):
        res.add(Figure(figure_key(lib, "p1"), "BP", "x", "jobs/s", runs=[rate]))
        res.add(Figure(figure_key(lib, "wake_p50"), "BP", "x", "ms", runs=[p50]))
    results: dict[str, Any] = {"BP": res}
    assert best_peer(results, "p1") == "pgqueuer-asyncpg"
    assert best_peer(results, "wake_p50", higher=False) == "procrastinate"
    assert best_peer(results, "p2") is None


def test_dsn_url_for_asyncpg_and_psycopg() -> None:
    assert dsn_url("host=127.0.0.1 port=5432 user=postgres dbname=x") == \
        "postgresql://postgres@127.0.0.1:5432/x"
    assert dsn_url("host=/tmp/s port=5433 user=u password=p@ss dbname=d") == \
        "postgresql://u:p%40ss@/d?host=%2Ftmp%2Fs&port=5433"
    assert dsn_url("postgresql://a@b/c") == "postgresql://a@b/c"


def test_the_peer_driver_imports_no_pgbatch_module() -> None:
    source = DRIVER.read_text(encoding="utf-8")
    assert "import pgbatch" not in source
    assert "from pgbatch" not in source


@pytest.mark.skipif(not os.environ.get("PGBATCH_BENCH_PEERS_PYTHON"),
                    reason="set PGBATCH_BENCH_PEERS_PYTHON to a Python that imports the peers")
@pytest.mark.timeout(1200)  # three peers' processes, each measured once
def test_peers_side_by_side_produce_their_figures(pg_server: PgTestServer,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "bp.json"
    code = cli.main(["--quick", "--scale", "0.05", "--only", "BP,B1", "--peers-python",
                     os.environ["PGBATCH_BENCH_PEERS_PYTHON"], "--dsn", pg_server.admin_dsn(),
                     "--output", str(out)])
    assert code == 0, out.with_suffix(".md").read_text() if out.with_suffix(".md").exists() else ""
    doc = json.loads(out.read_text())
    by_id = {s["id"]: s for s in doc["scenarios"]}
    keys = {f["key"] for f in by_id["BP"]["figures"]}
    for lib in ("pgqueuer_asyncpg", "pgqueuer_psycopg", "procrastinate"):
        for what in ("enqueue_single", "enqueue_batched", "p1", "p2", "wake_p50"):
            assert f"BP.{lib}.{what}" in keys, (lib, what)
    assert "BP.ratio.enqueue_batched" in keys
    batched = next(f for f in by_id["B1"]["figures"] if f["key"] == "B1.batched")
    assert batched["bars"][0]["ref"] == "BP.pgqueuer_asyncpg.enqueue_batched"
    assert "side by side" in doc["anchor_note"]
