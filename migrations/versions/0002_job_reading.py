"""Reading jobs: get_job() and list_jobs(), ordered by creation then enqueue order.

Revision ID: 0002_job_reading
Revises: 0001_initial

Upgrade applies the frozen ``0002_job_reading.sql`` next to this file: the
archive keeps each job's enqueue order (``job_archive.seq``, 0 for records
archived before this version) and gets the index list_jobs() pages along;
new type ``pgbatch.job_info``; new functions ``_live_state``, ``get_job``,
``list_jobs``; ``_archive``, ``_ack_plain`` and ``queue_stats`` replaced
(same contract). Old workers keep working against it.

Downgrade drops the new functions, the type, the index and the column, and
restores the 0001 bodies of the replaced functions (their text is below).
"""

# ruff: noqa: E501 - the SQL below is the frozen 0001 text, verbatim

from __future__ import annotations

from pathlib import Path

from pgbatch._migrate import apply_sql_file, execute_sql

revision = "0002_job_reading"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None

#: sha256 of 0002_job_reading.sql: released SQL never changes.
SQL_SHA256 = "517b2c0cfd595f34d6da864b13c0bfd2bf744dd5d12325d075fe4f669017b4e6"


#: Undoes 0002_job_reading.sql: the 0001 bodies of the replaced functions.
_DOWNGRADE = """
drop function if exists pgbatch.list_jobs(text, text, timestamptz, timestamptz, integer,
                                          timestamptz, bigint, uuid);
drop function if exists pgbatch.get_job(uuid);
drop type if exists pgbatch.job_info;
""" + r"""
-- Moves a job that has left the live table (the caller deleted it) into the
-- archive as done, dead or cancelled, and counts it for queue_stats().
create or replace function pgbatch._archive(r pgbatch.job, state text, token uuid, result jsonb,
                                            last_error jsonb default null)
returns void
language plpgsql
as $$
begin
    insert into pgbatch.job_archive
        (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
         created_at, finished_at, claim_token, claimed_by, last_error, result)
    values
        (r.id, r.queue, r.payload, r.priority, r.run_at, _archive.state, r.attempt, r.max_attempts,
         r.dedup_key, r.created_at, pgbatch.now(), token, r.claimed_by,
         coalesce(last_error, r.last_error), result);
    insert into pgbatch.queue_count (queue, done, dead, cancelled)
    values (r.queue,
            (_archive.state = 'done')::integer,
            (_archive.state = 'dead')::integer,
            (_archive.state = 'cancelled')::integer);
end
$$;
-- Settles job_ids[i] with claim_tokens[i] (acks without effects) set-wise in
-- one statement: delete the live rows the tokens hold, archive them as done,
-- count them. Returns the 1-based positions of the entries that are not
-- acked by their token (in order; NULL when all are). An entry whose token
-- acked the job in an earlier call (a retry) counts as acked. The caller
-- settles the rest one by one with ack() (ClaimLost or JobNotFound) and has
-- restored durable commit. Shared by ack_ids and ack_many.
-- The plan is pinned, because the live table's statistics swing between
-- empty and full (autoanalyze may sample it at a quiet moment), and a plan
-- made while it looked empty would walk the whole table for every entry:
-- the live rows are found by `id = any(job_ids)` (one probe of job_pkey per
-- entry; seq scans off), and paired with their entries by a hash join
-- (nested loops and merge joins off), so a batch costs O(entries) whatever
-- the estimates.
create or replace function pgbatch._ack_plain(job_ids uuid[], claim_tokens uuid[])
returns integer[]
language plpgsql
set enable_seqscan = off
set enable_nestloop = off
set enable_mergejoin = off
as $$
declare
    v_now    timestamptz := pgbatch.now();
    v_acked  bigint;
    v_missed integer[];
begin
    with del as (
        delete from pgbatch.job j
         using unnest(job_ids, claim_tokens) as e(id, tok)
         where j.id = any(job_ids) and j.id = e.id and j.claim_token = e.tok
        returning j.id, j.queue, j.payload, j.priority, j.run_at, j.attempt, j.max_attempts,
                  j.dedup_key, j.created_at, j.claim_token, j.claimed_by, j.last_error
    ), arch as (
        insert into pgbatch.job_archive
            (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
             created_at, finished_at, claim_token, claimed_by, last_error, result)
        select d.id, d.queue, d.payload, d.priority, d.run_at, 'done', d.attempt, d.max_attempts,
               d.dedup_key, d.created_at, v_now, d.claim_token, d.claimed_by, d.last_error,
               '{"op": "ack", "ids": []}'::jsonb
          from del d
        returning queue
    ), counted as (
        insert into pgbatch.queue_count (queue, done)
        select a.queue, count(*) from arch a group by a.queue
        returning 1
    )
    select count(*) into v_acked from arch;
    if v_acked = cardinality(job_ids) then
        return null;
    end if;
    -- some entry missed (a lost claim, a retry, a duplicate): find which
    select array_agg(e.ord order by e.ord) into v_missed
      from unnest(job_ids, claim_tokens) with ordinality as e(id, tok, ord)
     where (select a.result ->> 'op' from pgbatch.job_archive a
             where a.id = e.id and a.claim_token = e.tok) is distinct from 'ack';
    return v_missed;
end
$$;
-- queue_stats: per queue (all queues when `queue` is null): pending
-- (claimable now), scheduled (run_at in the future), claimed, and the
-- archived done, dead and cancelled records not yet swept, the age of the
-- oldest claimable job, and whether the queue is paused. Live counts read the
-- live table (as small as the backlog); archived counts sum append-only
-- deltas (see compact_counters).
create or replace function pgbatch.queue_stats(queue text default null)
returns setof pgbatch.queue_stat
language sql
stable
as $$
    with now_ as (select pgbatch.now() as t),
    live as (
        select j.queue,
               count(*) filter (where j.state = 'pending' and j.run_at <= n.t) as pending,
               count(*) filter (where j.state = 'pending' and j.run_at > n.t)  as scheduled,
               count(*) filter (where j.state = 'claimed')                      as claimed,
               max(n.t - j.run_at) filter (where j.state = 'pending' and j.run_at <= n.t) as oldest
          from pgbatch.job j, now_ n
         where queue_stats.queue is null or j.queue = queue_stats.queue
         group by j.queue
    ), archived as (
        select c.queue, sum(c.done) as done, sum(c.dead) as dead, sum(c.cancelled) as cancelled
          from pgbatch.queue_count c
         where queue_stats.queue is null or c.queue = queue_stats.queue
         group by c.queue
    ), names as (
        select q.name from pgbatch.queue q where queue_stats.queue is null or q.name = queue_stats.queue
        union select l.queue from live l
        union select a.queue from archived a
    )
    select nm.name,
           coalesce(l.pending, 0), coalesce(l.scheduled, 0), coalesce(l.claimed, 0),
           coalesce(a.done, 0)::bigint, coalesce(a.dead, 0)::bigint, coalesce(a.cancelled, 0)::bigint,
           l.oldest,
           coalesce(q.paused, false)
      from names nm
      left join live l on l.queue = nm.name
      left join archived a on a.queue = nm.name
      left join pgbatch.queue q on q.name = nm.name
     order by nm.name
$$;
""" + """
drop function if exists pgbatch._live_state(text, timestamptz, timestamptz);
drop index if exists pgbatch.job_archive_listing_idx;
alter table pgbatch.job_archive drop column if exists seq;
"""


def upgrade() -> None:
    apply_sql_file(Path(__file__).with_suffix(".sql"), SQL_SHA256)


def downgrade() -> None:
    execute_sql(_DOWNGRADE)
