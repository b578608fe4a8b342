"""B4: claim cost as the store grows.

One fresh database per store size: 0, 100k and 1M archived done jobs (finished, not
yet swept by retention), each with 100k pending jobs on the claimed queue. The stores are
built in a setup step with bulk ``INSERT … SELECT`` (time-ordered ids, older than the
pending jobs', as enqueue makes them), followed by ``VACUUM ANALYZE`` and a
``CHECKPOINT``; that is setup, not the measured path.

The measured path is the API's: ``Client.claim(queue, 1)`` then ``Client.ack(...)`` on one
autocommit connection, ``cycles`` times. The runs are interleaved across the stores
(run 1 on every store, then run 2, …) so that a change in the machine's load hits every
size alike. The figure is µs per job, and its ratio to the empty store's median. The
claim and ack parts are reported separately in the details (the ack waits for the WAL
flush, the claim does not).

Raw SQL on purpose: building stores of a given size needs bulk inserts into the
tables (the API would take hours), and their sizes are read from the catalog.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time

from pgbatch import Client
from pgbatch.bench._harness import NOOP_PAYLOAD, Context, checkpoint, connect, scalar
from pgbatch.bench._model import Bar, Figure, ScenarioResult

WARMUP = 50

# Ids: 48 bits of Unix milliseconds (one per row, in insertion order), a version nibble
# and pseudo-random bits: time-ordered like pgbatch.uuid_v7(), and cheap to make.
_ID = "(lpad(to_hex(b.ms + g), 12, '0') || '7' || substr(md5(g::text), 1, 19))::uuid"

_ADD_ARCHIVE = f"""
insert into pgbatch.job_archive
    (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
     created_at, finished_at, claim_token, claimed_by, last_error, result)
select {_ID}, 'bench', %(payload)s::jsonb, 0, now() - interval '1 hour', 'done', 1, 20,
       null, now() - interval '1 hour', now() - interval '1 minute', md5('t' || g)::uuid,
       'bench-setup', null, '{{"op": "ack", "ids": []}}'::jsonb
  from (select (extract(epoch from now()) * 1000)::bigint - 3600000 - %(n)s as ms) b,
       generate_series(1, %(n)s) g
"""

_ADD_PENDING = f"""
insert into pgbatch.job (id, queue, payload, priority, run_at, max_attempts, created_at)
select {_ID}, 'bench', %(payload)s::jsonb, 0, now(), 20, now()
  from (select (extract(epoch from now()) * 1000)::bigint - %(n)s as ms) b,
       generate_series(1, %(n)s) g
"""


def _cycles(client: Client, n: int) -> tuple[float, float, float]:
    """Run ``n`` claim+ack cycles; return (total, claim, ack) seconds."""
    claim_s = ack_s = 0.0
    t0 = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter()
        jobs = client.claim("bench", 1)
        b = time.perf_counter()
        if not jobs:
            raise RuntimeError("no pending job to claim")
        client.ack(jobs[0].id, jobs[0].claim_token)
        claim_s += b - a
        ack_s += time.perf_counter() - b
    return time.perf_counter() - t0, claim_s, ack_s


def run(ctx: Context, res: ScenarioResult) -> None:
    """Measure claim+ack latency at each store size."""
    sz = ctx.sizes
    payload = json.dumps(NOOP_PAYLOAD)
    sizes = sorted(set(sz.growth_sizes))
    largest = sizes[-1]
    us = {size: res.add(Figure(
        f"B4.us.{size}", "B4", f"claim(1)+ack with {size:,} done, {sz.growth_pending:,} pending",
        "µs/job")) for size in sizes}
    ratio = {size: res.add(Figure(
        f"B4.ratio.{size}", "B4", f"claim+ack cost, {size:,} done / empty store", "x",
        bars=[Bar("<=", "≤ 1.5x the empty store", value=1.5)] if size == largest else []))
        for size in sizes[1:]}
    res.notes.append(f"{sz.growth_cycles:,} claim(1)+ack cycles per run on one connection, "
                     "runs interleaved across the stores; stores built with INSERT … SELECT, "
                     "then VACUUM ANALYZE.")
    with contextlib.ExitStack() as stack:
        clients: dict[int, Client] = {}
        for size in sizes:
            ctx.log(f"B4 building store: {size:,} done + {sz.growth_pending:,} pending")
            dsn = stack.enter_context(ctx.server.fresh_db())
            t_build = time.perf_counter()
            with connect(dsn) as admin:
                if size:
                    admin.execute(_ADD_ARCHIVE, {"payload": payload, "n": size})
                    admin.execute("insert into pgbatch.queue_count (queue, done)"
                                  " values ('bench', %s)", (size,))
                admin.execute(_ADD_PENDING, {"payload": payload, "n": sz.growth_pending})
                admin.execute("vacuum analyze pgbatch.job")
                admin.execute("vacuum analyze pgbatch.job_archive")
                us[size].details["archive_mb"] = int(scalar(
                    admin, "select pg_total_relation_size('pgbatch.job_archive')")) / 2**20
            us[size].details["setup_seconds"] = time.perf_counter() - t_build
            client = Client.connect(dsn, min_size=1, max_size=1)
            stack.callback(client.close)
            _cycles(client, WARMUP)
            clients[size] = client
        with connect(ctx.server.dsn_for("postgres")) as admin:
            checkpoint(admin)
        for r in range(sz.runs):
            for size in sizes:
                ctx.log(f"B4 {size:,} done: run {r + 1}")
                total, claim_s, ack_s = _cycles(clients[size], sz.growth_cycles)
                fig = us[size]
                fig.runs.append(total * 1e6 / sz.growth_cycles)
                fig.details.setdefault("claim_us", []).append(claim_s * 1e6 / sz.growth_cycles)
                fig.details.setdefault("ack_us", []).append(ack_s * 1e6 / sz.growth_cycles)
    base = us[sizes[0]]
    base_median = base.median
    assert base_median is not None
    base_claim = statistics.median(base.details["claim_us"])
    base_ack = statistics.median(base.details["ack_us"])
    for size, fig in ratio.items():
        fig.runs = [v / base_median for v in us[size].runs]
        det = us[size].details
        fig.details["claim_only_ratio"] = statistics.median(det["claim_us"]) / base_claim
        fig.details["ack_only_ratio"] = statistics.median(det["ack_us"]) / base_ack
