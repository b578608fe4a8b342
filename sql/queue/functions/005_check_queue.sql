-- Validates a queue name: non-empty text of at most 128 characters (PB005).
create or replace function pgbatch._check_queue(queue text)
returns void
language plpgsql
as $$
begin
    if queue is null or length(queue) = 0 then
        perform pgbatch._raise('PB005', 'invalid queue name: must be non-empty text');
    elsif length(queue) > 128 then
        perform pgbatch._raise('PB005', format('invalid queue name: %s characters, at most 128 allowed', length(queue)));
    end if;
end
$$;
