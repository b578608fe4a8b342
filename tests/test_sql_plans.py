"""The hot path stays index-driven when the live table's statistics are wrong.

A queue table swings between empty and full, so autoanalyze may sample it at a
quiet moment: the statistics then say "empty" (``reltuples = 0`` with pages
left) while thousands of jobs wait. A claim or an ack planned as a join with
the live table would then walk the whole table for every job. This test sets
those statistics up for real (fill, drain, VACUUM without truncation, ANALYZE),
loads 5,000 jobs, and counts the rows a claim of 200 and their ``ack_ids``
read from ``pgbatch.job`` (``pg_stat_xact_user_tables``, this transaction only).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests.helpers import scalar

Conn = psycopg.Connection[Any]

BATCH = 200
LOADED = 5_000


def _load(conn: Conn, n: int) -> None:
    conn.execute("select pgbatch.enqueue_many(%s)",
                 [json.dumps([{"queue": "q", "payload": {"i": i}} for i in range(n)])])


def _reads(conn: Conn) -> tuple[int, int]:
    """Rows read from pgbatch.job by sequential scans and fetched through indexes."""
    row = conn.execute(
        "select coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0)"
        " from pg_stat_xact_user_tables where relid = 'pgbatch.job'::regclass").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_claim_and_ack_ids_read_a_batch_not_the_table_under_empty_stats(conn: Conn) -> None:
    _load(conn, 3_000)
    while rows := conn.execute("select id, claim_token from pgbatch.claim('q', 1000)").fetchall():
        conn.execute("select * from pgbatch.ack_ids(%s, %s)",
                     [[r[0] for r in rows], [r[1] for r in rows]])
    conn.execute("vacuum (truncate false) pgbatch.job")
    conn.execute("analyze pgbatch.job")
    stats = conn.execute(
        "select relpages, reltuples from pg_class where oid = 'pgbatch.job'::regclass").fetchone()
    assert stats is not None
    # the statistics say: empty
    assert stats[0] > 0
    assert stats[1] == 0
    _load(conn, LOADED)

    with conn.transaction():
        # the view also holds counts not yet flushed from earlier statements: take a delta
        seq0, idx0 = _reads(conn)
        jobs = conn.execute("select id, claim_token from pgbatch.claim('q', %s)",
                            [BATCH]).fetchall()
        assert len(jobs) == BATCH
        missed = conn.execute("select * from pgbatch.ack_ids(%s, %s)",
                              [[j[0] for j in jobs], [j[1] for j in jobs]]).fetchall()
        assert missed == []
        seq1, idx1 = _reads(conn)
    seq_read, idx_fetched = seq1 - seq0, idx1 - idx0
    # claim: <= BATCH via job_claim_idx and BATCH via job_pkey; ack: BATCH via job_pkey
    assert seq_read == 0
    assert idx_fetched <= 4 * BATCH, idx_fetched
    assert scalar(conn, "select count(*) from pgbatch.job_archive") == 3_000 + BATCH
