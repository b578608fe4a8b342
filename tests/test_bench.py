"""``pgbatch bench --quick`` at a tiny scale runs every scenario and reports every figure.

No timing is asserted: the benchmark's figures are for people (and the JSON kept in
the repository), not for the test suite. This test only checks that the benchmark runs
end to end on the session's server and produces every figure, the markdown table and
the JSON document.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pgbatch.bench import cli
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
    "B9": {"B9.jobs_api.first", "B9.jobs_api.deep", "B9.jobs_api.filtered", "B9.jobs_page"},
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
