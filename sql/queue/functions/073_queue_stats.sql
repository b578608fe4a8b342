-- queue_stats: per queue (all queues when `queue` is null): pending
-- (claimable now), scheduled (run_at in the future), claimed, and the
-- archived done, dead and cancelled records not yet swept, the age of the
-- oldest claimable job, and whether the queue is paused. "scheduled" is
-- _live_state()'s rule, shared with get_job() and list_jobs(). Live counts read the
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
               count(*) filter (where pgbatch._live_state(j.state, j.run_at, n.t) = 'pending')   as pending,
               count(*) filter (where pgbatch._live_state(j.state, j.run_at, n.t) = 'scheduled') as scheduled,
               count(*) filter (where j.state = 'claimed')                                       as claimed,
               max(n.t - j.run_at) filter (where pgbatch._live_state(j.state, j.run_at, n.t) = 'pending') as oldest
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
