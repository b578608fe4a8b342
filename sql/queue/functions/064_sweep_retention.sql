-- sweep_retention: deletes up to `limit` archived records: done and
-- cancelled ones finished more than `done_after` ago, dead ones more than
-- `dead_after` ago. Returns the number deleted. Safe on many nodes at once.
-- Commits without waiting for the WAL flush. The ages are 0 to limits()
-- max_retention_seconds (InvalidArgument, PB007).
create or replace function pgbatch.sweep_retention(
    done_after interval default '1 day',
    dead_after interval default '7 days',
    "limit"    integer  default 10000
)
returns integer
language plpgsql
as $$
declare
    v_now timestamptz := pgbatch.now();
    v_n   integer;
begin
    if sweep_retention."limit" is null or sweep_retention."limit" < 1 then
        perform pgbatch._raise('PB007', 'invalid limit: must be at least 1');
    end if;
    if done_after is null or dead_after is null or done_after < interval '0' or dead_after < interval '0' then
        perform pgbatch._raise('PB007', 'invalid retention: done_after and dead_after must be non-negative intervals');
    end if;
    if done_after > pgbatch._limit_interval('max_retention_seconds')
       or dead_after > pgbatch._limit_interval('max_retention_seconds') then
        perform pgbatch._raise('PB007', format('invalid retention: done_after and dead_after must be at most %s',
                                               justify_hours(pgbatch._limit_interval('max_retention_seconds'))));
    end if;
    perform pgbatch._relax_commit();
    with victims as (
        select a.id from pgbatch.job_archive a
         where (a.state in ('done', 'cancelled') and a.finished_at < v_now - done_after)
            or (a.state = 'dead' and a.finished_at < v_now - dead_after)
         limit sweep_retention."limit"
           for update skip locked
    ), gone as (
        delete from pgbatch.job_archive a using victims v where a.id = v.id
        returning a.queue, a.state
    ), counted as (
        insert into pgbatch.queue_count (queue, done, dead, cancelled)
        select g.queue,
               -count(*) filter (where g.state = 'done'),
               -count(*) filter (where g.state = 'dead'),
               -count(*) filter (where g.state = 'cancelled')
          from gone g group by g.queue
        returning 1
    )
    select count(*) into v_n from gone;
    return v_n;
end
$$;
