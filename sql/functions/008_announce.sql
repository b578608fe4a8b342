-- Wakes listeners of a queue: `ready` jobs are claimable now (payload: the
-- count), and/or the earliest job becomes due at `due_at` (payload:
-- '@' + Unix milliseconds), so a listener can arm a timer instead of polling.
-- Does nothing when the queue's notifications are switched off
-- (set_queue_notify). Also creates the queue's row on first use.
-- NOTIFY folds identical payloads inside one transaction, so a second
-- announcement in the same transaction carries a '/n' suffix to stay distinct.
create or replace function pgbatch._announce(queue text, ready bigint, due_at timestamptz default null)
returns void
language plpgsql
as $$
declare
    v_notify boolean;
    v_channel text;
    v_seq integer;
    v_suffix text := '';
begin
    select q.notify into v_notify from pgbatch.queue q where q.name = _announce.queue;
    if not found then
        insert into pgbatch.queue (name) values (_announce.queue) on conflict do nothing;
        v_notify := true;
    end if;
    if not v_notify or (coalesce(ready, 0) <= 0 and due_at is null) then
        return;
    end if;
    v_channel := pgbatch.channel_name(_announce.queue);
    v_seq := coalesce(nullif(current_setting('pgbatch.notify_seq', true), '')::integer, 0) + 1;
    perform set_config('pgbatch.notify_seq', v_seq::text, true);
    if v_seq > 1 then
        v_suffix := '/' || v_seq;
    end if;
    if ready > 0 then
        perform pg_notify(v_channel, ready::text || v_suffix);
    end if;
    if due_at is not null then
        perform pg_notify(v_channel, '@' || floor(extract(epoch from due_at) * 1000)::bigint::text || v_suffix);
    end if;
end
$$;
