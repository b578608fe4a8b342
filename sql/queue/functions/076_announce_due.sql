-- announce_due: for every queue with notifications on, announces the jobs
-- that became due since the last call (run_at in (announced_until, now]):
-- the maintenance loop's safety net for due-time hints a listener missed.
-- Jobs that were claimable the moment they were enqueued (run_at =
-- created_at) were announced then and are not announced again.
-- Returns the number of jobs announced. Commits without waiting for the WAL
-- flush.
create or replace function pgbatch.announce_due()
returns bigint
language plpgsql
as $$
declare
    q       record;
    v_now   timestamptz := pgbatch.now();
    v_n     bigint;
    v_total bigint := 0;
begin
    perform pgbatch._relax_commit();
    for q in select x.name, x.announced_until from pgbatch.queue x
              where x.notify and not x.paused and x.announced_until < v_now
                for update skip locked
    loop
        select count(*) into v_n from pgbatch.job j
         where j.queue = q.name and j.state = 'pending'
           and j.run_at > q.announced_until and j.run_at <= v_now
           and j.run_at > j.created_at;
        update pgbatch.queue x set announced_until = v_now where x.name = q.name;
        if v_n > 0 then
            perform pgbatch._announce(q.name, v_n);
            v_total := v_total + v_n;
        end if;
    end loop;
    return v_total;
end
$$;
