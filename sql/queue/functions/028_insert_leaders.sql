-- Inserts the leaders among jobs prepared by _insert_jobs (every job whose
-- id equals its leader's; see there) in request order, leaving out those
-- that meet a live duplicate (queue, dedup_key), and announces them: the
-- ready count and earliest due time once per queue.
create or replace function pgbatch._insert_leaders(
    ids          uuid[],
    leaders      uuid[],
    queues       text[],
    payloads     jsonb[],
    priorities   integer[],
    run_ats      timestamptz[],
    max_attempts integer[],
    dedup_keys   text[],
    now          timestamptz
)
returns void
language plpgsql
as $$
declare
    v_count bigint;
begin
    with ins as (
        insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
        select u.id, u.queue, u.payload, coalesce(u.priority, 0), u.run_at, u.max_attempts, u.dedup_key, _insert_leaders.now
          from unnest(ids, leaders, queues, payloads, priorities, run_ats, max_attempts, dedup_keys)
               with ordinality as u(id, leader, queue, payload, priority, run_at, max_attempts, dedup_key, ord)
         where u.id = u.leader
         order by u.ord
        on conflict (queue, dedup_key) where dedup_key is not null do nothing
        returning j.queue, j.run_at
    )
    select count(pgbatch._announce(p.queue, p.ready, p.due_at)) into v_count
      from (select ins.queue,
                   count(*) filter (where ins.run_at <= _insert_leaders.now) as ready,
                   min(ins.run_at) filter (where ins.run_at > _insert_leaders.now) as due_at
              from ins group by ins.queue) p;
end
$$;
