-- Validates the arguments of one enqueue request.
create or replace function pgbatch._check_job_args(queue text, payload jsonb, max_attempts integer)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check_queue(queue);
    if payload is null then
        perform pgbatch._raise('PB006', 'invalid payload: must be a JSON value, not NULL');
    elsif pg_column_size(payload) > pgbatch.max_payload_bytes() then
        perform pgbatch._raise('PB006', format('payload too large: %s bytes, at most %s allowed',
                                               pg_column_size(payload), pgbatch.max_payload_bytes()));
    end if;
    if max_attempts is null or max_attempts < 1 then
        perform pgbatch._raise('PB007', format('invalid max_attempts: %s, must be at least 1', coalesce(max_attempts::text, 'NULL')));
    end if;
end
$$;
