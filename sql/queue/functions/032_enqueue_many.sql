-- enqueue_many: the bulk form of enqueue(). `requests` is a JSON array of
-- objects with "queue" and optional "payload", "run_at", "priority",
-- "dedup_key", "max_attempts", "id" (the same shape as ack effects'
-- "enqueue"). Returns the ids in request order; one NOTIFY per queue.
create or replace function pgbatch.enqueue_many(requests jsonb)
returns uuid[]
language plpgsql
as $$
begin
    perform pgbatch._durable_commit();
    return pgbatch._enqueue_requests(requests);
end
$$;
