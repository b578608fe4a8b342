-- drop_queue: removes a queue that holds no live job: its row (paused, notify
-- switches) and its counters of archived jobs, so it leaves queue_stats().
-- Archived jobs of the queue stay readable (get_job, list_jobs) until swept.
-- Refused, changing nothing: a queue pgbatch has no trace of (InvalidArgument,
-- PB007), a queue with pending, scheduled or claimed jobs (InvalidState, PB004).
-- An enqueue into the queue later creates it again.
create or replace function pgbatch.drop_queue(queue text)
returns void
language plpgsql
as $$
declare
    v_live bigint;
begin
    perform pgbatch._check_queue(queue);
    perform 1 from pgbatch.queue q where q.name = drop_queue.queue for update;
    if not found and not exists (select 1 from pgbatch.queue_count c
                                  where c.queue = drop_queue.queue) then
        perform pgbatch._raise('PB007', format('no queue named %L', queue));
    end if;
    select count(*) into v_live from pgbatch.job j where j.queue = drop_queue.queue;
    if v_live > 0 then
        perform pgbatch._raise('PB004', format('queue %L holds %s live jobs (pending, scheduled '
                                               'or claimed): only an empty queue can be dropped',
                                               queue, v_live));
    end if;
    delete from pgbatch.queue q where q.name = drop_queue.queue;
    delete from pgbatch.queue_count c where c.queue = drop_queue.queue;
end
$$;
