-- pause_queue: claims on the queue return nothing until resume_queue().
-- Enqueues still succeed; running claims are not affected.
create or replace function pgbatch.pause_queue(queue text)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check_queue(queue);
    insert into pgbatch.queue as q (name, paused) values (pause_queue.queue, true)
    on conflict (name) do update set paused = true;
end
$$;
