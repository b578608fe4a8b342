-- Validates a queue name (see _queue_problem): InvalidQueueName (PB005).
create or replace function pgbatch._check_queue(queue text)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check(pgbatch._queue_problem(queue));
end
$$;
