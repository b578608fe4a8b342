"""B9: the jobs list (part 1) and the batch run pages (part 2, ``measure_runs``) of the
web server with a large archive.

One fresh database holds ``web_archived`` archived jobs (1,000,000; ``--quick``:
20,000) over four queues, one in fifty dead, the rest done, plus 1,000 pending
jobs; built with bulk ``INSERT … SELECT`` (time-ordered ids and creation times,
strictly increasing ``seq``) and ``VACUUM ANALYZE``: setup, not the measured path.

The measured path is the whole server: ``pgbatch web`` started as its own
process (uvicorn, its pool connecting as the benchmark's role), requested over
HTTP with keep-alive by one client in the benchmark's process. Per run,
``web_requests`` requests of each kind:

- ``B9.jobs_api.first``: ``GET /api/v1/jobs?limit=50`` (newest page);
- ``B9.jobs_api.deep``: the same, following ``next_cursor`` page after page
  (each request one keyset page further back in the archive);
- ``B9.jobs_api.filtered``: ``?queue=q1&state=dead&limit=50``, paging on;
- ``B9.jobs_page``: the HTML page ``/jobs?limit=50``, paging on.

Each figure is the p95 of its run's request latencies in ms, median over runs;
the bar is 100 ms (issue 17). Raw SQL in the setup only, as in B4.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from pgbatch.bench._harness import Context, connect
from pgbatch.bench._model import Bar, Figure, ScenarioResult, percentile

#: The issue's bar: p95 under 100 ms.
P95_MS = 100.0
PAGE = 50

_ID = "(lpad(to_hex(b.ms + g), 12, '0') || '7' || substr(md5(g::text), 1, 19))::uuid"

_ADD_ARCHIVE = f"""
insert into pgbatch.job_archive
    (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
     created_at, finished_at, claim_token, claimed_by, last_error, result, seq)
select {_ID}, 'q' || (g %% 4), jsonb_build_object('n', g, 'to', 'user' || g || '@example.com'),
       0, b.t0 + g * interval '1 ms',
       case when g %% 50 = 0 then 'dead' else 'done' end, 1, 1, null,
       b.t0 + g * interval '1 ms', b.t0 + g * interval '1 ms' + interval '2 s',
       md5('t' || g)::uuid, 'bench-setup',
       case when g %% 50 = 0 then '{{"type": "ValueError", "message": "bad row"}}'::jsonb end,
       '{{"op": "ack", "ids": []}}'::jsonb, g
  from (select (extract(epoch from now()) * 1000)::bigint - %(n)s - 7200000 as ms,
               now() - interval '2 hours' - %(n)s * interval '1 ms' as t0) b,
       generate_series(1, %(n)s) g
"""

_COUNTS = """
insert into pgbatch.queue_count (queue, done, dead)
select a.queue, count(*) filter (where a.state = 'done'), count(*) filter (where a.state = 'dead')
  from pgbatch.job_archive a group by a.queue
"""

PENDING = 1_000
#: What uvicorn logs once the app's startup (its pool) is done and it listens.
READY_LINE = "Uvicorn running on"


@contextlib.contextmanager
def _web_process(dsn: str, ctx: Context) -> Iterator[str]:
    """``pgbatch web`` on a free loopback port as a child process; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (ctx.workdir / f"b9-web-{port}.log").open("w+", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgbatch", "web", "--dsn", dsn, "--port", str(port)],
        stdout=log, stderr=subprocess.PIPE, text=True)
    drain: threading.Thread | None = None
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # blocks on the child's output: its own log says when
            log.write(line)
            if READY_LINE in line:
                break
        else:
            raise RuntimeError(f"pgbatch web exited ({proc.wait()}) before listening; "
                               f"see {log.name}")
        drain = threading.Thread(target=lambda: [log.write(x) for x in proc.stderr or ()])
        drain.start()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if drain is not None:
            drain.join(30)  # the child's stderr is closed: the copy ends
        if proc.stderr is not None:
            proc.stderr.close()
        log.close()


def _pages(get: Callable[[str], Any], path: str, n: int, cursor_of: Callable[[Any], str | None],
           ) -> list[float]:
    """``n`` requests of ``path``, following the cursor; ms each."""
    out: list[float] = []
    cursor: str | None = None
    for _ in range(n):
        url = path + (f"&cursor={cursor}" if cursor else "")
        t = time.perf_counter()
        response = get(url)
        out.append((time.perf_counter() - t) * 1000)
        cursor = cursor_of(response)
    return out


def run(ctx: Context, res: ScenarioResult) -> None:
    """Build the archive, serve the app, measure the jobs list."""
    import httpx  # noqa: PLC0415 (the web extra)

    sz = ctx.sizes
    bars = [Bar("<=", f"p95 < {P95_MS:g} ms", value=P95_MS)]
    label = f"with {sz.web_archived:,} archived jobs, p95 of {sz.web_requests} requests"
    figs = {key: res.add(Figure(f"B9.{key}", "B9", f"{text} {label}", "ms", bars=list(bars)))
            for key, text in (("jobs_api.first", "GET /api/v1/jobs, newest page,"),
                              ("jobs_api.deep", "GET /api/v1/jobs, paging back by cursor,"),
                              ("jobs_api.filtered", "GET /api/v1/jobs?queue&state=dead,"),
                              ("jobs_page", "GET /jobs (HTML), paging back,"))}
    res.notes.append(f"{sz.web_archived:,} archived jobs over 4 queues (2% dead) + {PENDING:,} "
                     "pending; the app served by uvicorn in the benchmark's process, one "
                     "keep-alive HTTP client; pages of 50.")
    with ctx.server.fresh_db() as dsn:
        ctx.log(f"B9 building the archive: {sz.web_archived:,} jobs")
        t_build = time.perf_counter()
        with connect(dsn) as admin:
            admin.execute(_ADD_ARCHIVE, {"n": sz.web_archived})
            admin.execute(_COUNTS)
            for i in range(0, PENDING, 500):
                admin.execute("select pgbatch.enqueue_many(jsonb_agg(jsonb_build_object("
                              "'queue', 'q1', 'payload', jsonb_build_object('n', g))))"
                              " from generate_series(%s::int, %s::int) g", (i, i + 499))
            admin.execute("vacuum analyze pgbatch.job_archive")
            admin.execute("vacuum analyze pgbatch.job")
        figs["jobs_api.first"].details["setup_seconds"] = time.perf_counter() - t_build
        with _web_process(dsn, ctx) as url, httpx.Client(base_url=url, timeout=60) as http:
            def get(url: str) -> httpx.Response:
                r = http.get(url)
                r.raise_for_status()
                return r

            def api_cursor(r: httpx.Response) -> str | None:
                return r.json()["next_cursor"]  # type: ignore[no-any-return]

            def html_cursor(r: httpx.Response) -> str | None:
                marker = 'id="next-page" href="'
                at = r.text.find(marker)
                if at < 0:
                    return None
                href = r.text[at + len(marker):r.text.find('"', at + len(marker))]
                return href.split("cursor=", 1)[1].split("&", 1)[0] if "cursor=" in href \
                    else None

            _pages(get, f"/api/v1/jobs?limit={PAGE}", 10, api_cursor)  # warm-up
            for r in range(sz.runs):
                ctx.log(f"B9 run {r + 1}")
                samples = {
                    "jobs_api.first": _pages(get, f"/api/v1/jobs?limit={PAGE}",
                                             sz.web_requests, lambda _r: None),
                    "jobs_api.deep": _pages(get, f"/api/v1/jobs?limit={PAGE}",
                                            sz.web_requests, api_cursor),
                    "jobs_api.filtered": _pages(get, f"/api/v1/jobs?queue=q1&state=dead"
                                                     f"&limit={PAGE}", sz.web_requests,
                                                api_cursor),
                    "jobs_page": _pages(get, f"/jobs?limit={PAGE}", sz.web_requests,
                                        html_cursor),
                }
                for key, values in samples.items():
                    figs[key].runs.append(percentile(values, 95))
                    figs[key].details.setdefault("p50_ms", []).append(percentile(values, 50))
                    figs[key].details.setdefault("max_ms", []).append(max(values))
            measure_runs(ctx, res, dsn, get)


# -- part 2: batch runs --------------------------------------------------------------------

#: The job whose executions part 2 launches.
RUNS_JOB = "b9-runs"
_RUNS_DEFINITION = ('{"steps": [{"name": "prepare", "kind": "tasklet"}, {"name": "load", '
                    '"kind": "chunk", "reader": "r.Reader", "writer": "w.Writer", '
                    '"chunk_size": 100}]}')


def runs_count(ctx: Context) -> int:
    """How many executions part 2 launches: 10,000 with the full archive (1/100 of it)."""
    return max(100, ctx.sizes.web_archived // 100)


def measure_runs(ctx: Context, res: ScenarioResult, dsn: str,
                 get: Callable[[str], Any]) -> None:
    """B9 part 2: launch ``runs_count`` executions (one statement of ``launch_job`` calls,
    setup), then measure the run page and the runs list through the running server:

    - ``B9.run_api``: ``GET /api/v1/runs/{id}`` (get_execution, step_executions,
      execution_events) of executions picked at random;
    - ``B9.run_page``: the HTML page ``/runs/{id}`` of the same;
    - ``B9.runs_api.deep``: ``GET /api/v1/runs?limit=50`` following ``next_cursor``.
    """
    sz = ctx.sizes
    runs = runs_count(ctx)
    bars = [Bar("<=", f"p95 < {P95_MS:g} ms", value=P95_MS)]
    label = f"with {runs:,} runs, p95 of {sz.web_requests} requests"
    figs = {key: res.add(Figure(f"B9.{key}", "B9", f"{text} {label}", "ms", bars=list(bars)))
            for key, text in (("run_api", "GET /api/v1/runs/{id},"),
                              ("run_page", "GET /runs/{id} (HTML),"),
                              ("runs_api.deep", "GET /api/v1/runs, paging back by cursor,"))}
    ctx.log(f"B9 launching {runs:,} runs")
    t_build = time.perf_counter()
    with connect(dsn) as admin:
        admin.execute("select pgbatch.register_job(%s, %s::jsonb)", (RUNS_JOB, _RUNS_DEFINITION))
        admin.execute("select count(pgbatch.launch_job(%s, jsonb_build_object('n', g),"
                      " 'b9-run-' || g)) from generate_series(1, %s) g", (RUNS_JOB, runs))
        admin.execute("vacuum analyze pgbatch.job_execution")
        picked = [int(r[0]) for r in admin.execute(
            "select id from pgbatch.job_execution order by random() limit %s",
            (sz.web_requests,)).fetchall()]
    figs["run_api"].details["setup_seconds"] = time.perf_counter() - t_build
    res.notes.append(f"{runs:,} executions launched (STARTING, one work item each) on the "
                     "same database; run pages of executions picked at random.")

    def fetch_each(path: str) -> list[float]:
        out: list[float] = []
        for i in range(sz.web_requests):
            t = time.perf_counter()
            get(path.format(picked[i % len(picked)]))
            out.append((time.perf_counter() - t) * 1000)
        return out

    def runs_cursor(r: Any) -> str | None:
        return r.json()["next_cursor"]  # type: ignore[no-any-return]

    fetch_each("/api/v1/runs/{}")  # warm-up
    for r in range(sz.runs):
        ctx.log(f"B9 runs, run {r + 1}")
        samples = {"run_api": fetch_each("/api/v1/runs/{}"),
                   "run_page": fetch_each("/runs/{}"),
                   "runs_api.deep": _pages(get, f"/api/v1/runs?limit={PAGE}", sz.web_requests,
                                           runs_cursor)}
        for key, values in samples.items():
            figs[key].runs.append(percentile(values, 95))
            figs[key].details.setdefault("p50_ms", []).append(percentile(values, 50))
            figs[key].details.setdefault("max_ms", []).append(max(values))
