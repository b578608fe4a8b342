-- set_queue_notify: switches the queue's NOTIFY on or off. Off saves the
-- NOTIFY cost on every enqueue (it takes a database-wide lock at commit);
-- workers then find the queue's jobs by polling only.
create or replace function pgbatch.set_queue_notify(queue text, enabled boolean)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check_queue(queue);
    if enabled is null then
        perform pgbatch._raise('PB007', 'enabled must be true or false');
    end if;
    insert into pgbatch.queue as q (name, notify) values (set_queue_notify.queue, enabled)
    on conflict (name) do update set notify = excluded.notify;
end
$$;
