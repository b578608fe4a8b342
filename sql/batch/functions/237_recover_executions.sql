-- The batch recovery sweep (BATCH.md §7), run by every worker node's
-- maintenance loop (and at its start): recovers up to `limit` running
-- executions (STARTED, STOPPING, PAUSING; STARTING without a live work item)
-- whose worker is gone, judged by
-- their current work item in database time:
--   claimed, lease expired more than `grace` ago   the worker died or hangs
--   pending                                         its claim was reaped, released
--                                                   at shutdown, or ended by its
--                                                   node's restart (register_node:
--                                                   the fast path, no lease wait)
--   not live any more (dead, cancelled)             stranded
-- Each is locked item first, then execution, with SKIP LOCKED, and checked
-- again under the locks, so many nodes sweeping at once recover each execution
-- exactly once. The first two cases apply _batch_recover (the job's policy,
-- the recovery limit; the old item is retired, so a zombie holding it is
-- fenced out). A stranded STARTING or STARTED execution (its work item was
-- nacked or dead-lettered to its attempt limit, e.g. by workers that do not
-- know its definition) ends FAILED with exit WORK_ITEM_DEAD
-- and the item's last error; a stranded STOPPING / PAUSING one ends STOPPED /
-- PAUSED. Returns the number of executions recovered. `grace`: 0 seconds to
-- 1 day, `limit` at least 1 (InvalidArgument, PB007).
create or replace function pgbatch.recover_executions(grace interval default '0 seconds', "limit" integer default 100)
returns integer
language plpgsql
as $$
declare
    v       record;
    x       pgbatch.job_execution;
    j       pgbatch.job;
    v_n     integer := 0;
    v_error jsonb;
    v_state text;
begin
    if recover_executions.grace is null or not (recover_executions.grace between interval '0' and interval '1 day') then
        perform pgbatch._raise('PB007', 'invalid grace: must be an interval from 0 seconds to 1 day');
    end if;
    if recover_executions."limit" is null or recover_executions."limit" < 1 then
        perform pgbatch._raise('PB007', 'invalid limit: must be at least 1');
    end if;
    for v in
        select e.id, e.queue_job_id from pgbatch.job_execution e
         where (e.status in ('STARTED', 'STOPPING', 'PAUSING')
                and not exists (select 1 from pgbatch.job q
                                 where q.id = e.queue_job_id and q.state = 'claimed'
                                   and q.lease_expires_at >= pgbatch.now() - recover_executions.grace))
            or (e.status = 'STARTING' and not exists (select 1 from pgbatch.job q where q.id = e.queue_job_id))
         order by e.lease_expires_at nulls first, e.id
         limit recover_executions."limit"
    loop
        j := null;
        select * into j from pgbatch.job q where q.id = v.queue_job_id for update skip locked;
        if not found and exists (select 1 from pgbatch.job q where q.id = v.queue_job_id) then
            continue;  -- a worker or another sweeper holds its item
        end if;
        select * into x from pgbatch.job_execution e where e.id = v.id for update skip locked;
        if not found or x.status not in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING')
           or x.queue_job_id is distinct from v.queue_job_id or (x.status = 'STARTING' and j.id is not null) then
            continue;
        end if;
        if j.id is not null then
            if j.state = 'claimed' and j.lease_expires_at >= pgbatch.now() - recover_executions.grace then
                continue;
            end if;
            perform pgbatch._batch_recover(x.id, case when j.state = 'pending'
                                                      then 'its work item was given back (reaped, released or its node restarted)'
                                                      else 'the lease of its work item expired' end, false);
        elsif x.status in ('STARTING', 'STARTED') then
            select a.state, a.last_error into v_state, v_error from pgbatch.job_archive a where a.id = x.queue_job_id;
            perform pgbatch._batch_finish(x.id, 'FAILED', 'WORK_ITEM_DEAD',
                                          format('its work item %s ended %s: %s', x.queue_job_id,
                                                 coalesce(v_state, 'missing'),
                                                 coalesce(v_error ->> 'message', v_error::text, 'no error recorded')),
                                          'recovered', null, 'FAILED',
                                          jsonb_build_object('reason', 'work item ' || coalesce(v_state, 'missing'),
                                                             'job_id', x.queue_job_id));
        else
            perform pgbatch._batch_recover(x.id, 'its work item is gone', false);
        end if;
        v_n := v_n + 1;
    end loop;
    return v_n;
end
$$;
