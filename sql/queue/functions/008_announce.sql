-- Wakes listeners of a queue: `ready` jobs are claimable now (payload: the
-- count), and/or the earliest job becomes due at `due_at` (payload:
-- '@' + Unix milliseconds), so a listener can arm a timer instead of polling.
-- Does nothing when the queue's notifications are switched off
-- (set_queue_notify). Also creates the queue's row on first use.
-- NOTIFY folds identical payloads on one channel inside one transaction, so
-- the n-th announcement on the same channel in a transaction (n > 1) carries
-- a '/n' suffix to stay distinct; the first one on each channel has none (a
-- transaction that announces queues b then a still sends a plain '100' to a).
-- The per-channel counts live in the transaction-local setting
-- pgbatch.notify_seqs (a JSON object: channel -> count).
create or replace function pgbatch._announce(queue text, ready bigint, due_at timestamptz default null)
returns void
language plpgsql
as $$
declare
    v_notify boolean;
    v_channel text;
    v_seqs jsonb;
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
    v_seqs := coalesce(nullif(current_setting('pgbatch.notify_seqs', true), '')::jsonb, '{}');
    v_seq := coalesce((v_seqs ->> v_channel)::integer, 0) + 1;
    perform set_config('pgbatch.notify_seqs', jsonb_set(v_seqs, array[v_channel], to_jsonb(v_seq))::text, true);
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
