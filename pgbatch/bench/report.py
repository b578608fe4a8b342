"""The benchmark's outputs: a markdown table (stdout and ``.md``) and a JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pgbatch.bench._model import (
    ANCHOR_NOTE,
    ANCHORS,
    NOT_IMPLEMENTED,
    PEERS_NOTE,
    Figure,
    ScenarioResult,
)

FORMAT = "pgbatch-bench/1"


def fmt(value: float | None) -> str:
    """A number for the table: thousands separators, a few significant digits."""
    if value is None:
        return "—"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    if a == 0:
        return "0"
    return f"{value:.3f}"


def all_figures(results: Sequence[ScenarioResult]) -> dict[str, Figure]:
    """Every figure by key."""
    return {f.key: f for r in results for f in r.figures}


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("pass" if ok else "**FAIL**")


def _bar_text(verdicts: list[dict[str, Any]]) -> str:
    parts = []
    for v in verdicts:
        if v.get("ref") is None:
            parts.append(v["text"])
        elif v["target"] is None:
            parts.append(f"{v['text']} ({v['ref']} not run)")
        else:
            parts.append(f"{v['text']} = {fmt(v['target'])}")
    return "; ".join(parts) if parts else "—"


def to_json(meta: Mapping[str, Any], results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """The JSON document of a run."""
    figs = all_figures(results)
    scenarios = []
    passed = failed = unjudged = 0
    failed_keys: list[str] = []
    for r in results:
        figures = []
        for f in r.figures:
            ok, verdicts = f.verdict(figs)
            if ok is True:
                passed += 1
            elif ok is False:
                failed += 1
                failed_keys.append(f.key)
            else:
                unjudged += 1
            figures.append({
                "key": f.key, "label": f.label, "unit": f.unit, "runs": f.runs,
                "median": f.median, "min": f.low, "max": f.high,
                "bars": verdicts, "pass": ok, "details": f.details,
            })
        scenarios.append({
            "id": r.id, "title": r.title, "status": r.status, "seconds": round(r.seconds, 2),
            "loadavg_start": r.loadavg_start, "notes": r.notes, "error": r.error,
            "details": r.details, "figures": figures,
        })
    return {
        "format": FORMAT,
        **meta,
        "anchors": dict(ANCHORS),
        "anchor_note": PEERS_NOTE if any(r.id == "BP" and r.status == "ok" for r in results)
                       else ANCHOR_NOTE,
        "scenarios": scenarios,
        "not_implemented": [{"id": k, "what": v[0], "bar": v[1]}
                            for k, v in NOT_IMPLEMENTED.items()],
        "summary": {"figures": passed + failed + unjudged, "passed": passed, "failed": failed,
                    "without_bar": unjudged, "failed_keys": failed_keys},
    }


def to_markdown(doc: Mapping[str, Any]) -> str:
    """The markdown report of a JSON document made by ``to_json``."""
    m = doc.get("machine", {})
    s = m.get("server_settings", {})
    load = doc.get("loadavg", {})
    lines = [
        f"# pgbatch bench — {doc.get('mode', '?')} run, {m.get('date', '?')}",
        "",
        f"- machine: {m.get('cpu_model', '?')}, {m.get('cpus_usable', '?')} usable cores, "
        f"{m.get('memory_mb', '?')} MB RAM, {m.get('os', '?')}",
        f"- PostgreSQL {s.get('server_version', '?')} ({m.get('server', '?')}): fsync="
        f"{s.get('fsync', '?')}, synchronous_commit={s.get('synchronous_commit', '?')}, "
        f"shared_buffers={s.get('shared_buffers', '?')}, max_connections="
        f"{s.get('max_connections', '?')}, wal_sync_method={s.get('wal_sync_method', '?')}",
        f"- Python {m.get('python', '?')}, psycopg {m.get('psycopg', '?')}, pgbatch "
        f"{doc.get('pgbatch_version', '?')} ({m.get('git') or 'no git'})",
        f"- runs per figure: {doc.get('runs', '?')} (median, min-max over runs); "
        f"duration {doc.get('duration_s', 0):.0f} s; load average (1 min) at start "
        f"{_load(load.get('start'))}, at end {_load(load.get('end'))}",
        "",
        "| id | figure | median | min-max | unit | bar | result |",
        "| --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    order = ["BP", "B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"]
    by_id = {sc["id"]: sc for sc in doc.get("scenarios", [])}
    missing = {n["id"]: n for n in doc.get("not_implemented", [])}
    for sid in order:
        sc = by_id.get(sid)
        if sc is None:
            if sid in missing:
                n = missing[sid]
                lines.append(f"| {sid} | {n['what']} | not yet implemented | | | {n['bar']} | — |")
            continue
        if sc["status"] != "ok":
            last = ((sc.get("error") or "").strip().splitlines() or [""])[-1]
            lines.append(f"| {sid} | {sc['title']} | **{sc['status']}** | | | | "
                         f"{last.replace('|', '/')} |")
        for f in sc["figures"]:
            rng = "" if f["min"] is None or len(f["runs"]) < 2 else \
                f"{fmt(f['min'])}-{fmt(f['max'])}"
            lines.append(f"| {sid} | {f['label']} | {fmt(f['median'])} | {rng} | {f['unit']} | "
                         f"{_bar_text(f['bars'])} | {_mark(f['pass'])} |")
    summ = doc.get("summary", {})
    lines += ["", f"Bars met: {summ.get('passed', 0)}, missed: {summ.get('failed', 0)}"
                  f" ({', '.join(summ.get('failed_keys', [])) or 'none'}); figures without a "
                  f"bar: {summ.get('without_bar', 0)}.", "", f"_{doc.get('anchor_note', '')}_"]
    b5 = by_id.get("B5")
    if b5 and b5.get("details", {}).get("buckets"):
        lines += ["", "## B5 soak, per bucket", "",
                  "| until (s) | settled jobs/s | enqueued jobs/s | pending | claimed "
                  "| job dead tuples | job autovacuums |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for b in b5["details"]["buckets"]:
            lines.append(f"| {b['end_s']:.0f} | {fmt(b['processed_per_s'])} | "
                         f"{fmt(b['enqueued_per_s'])} | {b['pending']:,} | {b['claimed']:,} | "
                         f"{_int(b.get('job_dead_tuples'))} | {_int(b.get('job_autovacuums'))} |")
        sizes = b5["details"].get("sizes_mb", {})
        if sizes:
            lines += ["", "Sizes at the end (MB): " + ", ".join(
                f"{k.removesuffix('_mb')} {fmt(v)}" for k, v in sizes.items())]
    notes = [(sc["id"], n) for sc in doc.get("scenarios", []) for n in sc.get("notes", [])]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {sid}: {n}" for sid, n in notes]
    errors = [(sc["id"], sc["error"]) for sc in doc.get("scenarios", []) if sc.get("error")]
    if errors:
        lines += ["", "## Errors", ""]
        for sid, err in errors:
            lines += [f"### {sid}", "", "```", err.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _int(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _load(value: Any) -> str:
    if not value:
        return "?"
    return f"{value[0]:.2f}"


def write(doc: Mapping[str, Any], markdown: str, path: Path) -> Path:
    """Write the JSON to ``path`` and the markdown next to it; return the markdown path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    md = path.with_suffix(".md")
    md.write_text(markdown, encoding="utf-8")
    return md
