-- next_due: the earliest run_at of a pending job in any of `queues`, or NULL
-- when none is pending. Idle workers use it to arm a timer for jobs that
-- become due later.
create or replace function pgbatch.next_due(queues text[])
returns timestamptz
language sql
stable
as $$
    select min(j.run_at) from pgbatch.job j
     where j.queue = any(next_due.queues) and j.state = 'pending'
$$;
