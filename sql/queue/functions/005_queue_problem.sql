-- What is wrong with a queue name, as {sqlstate, message} (InvalidQueueName,
-- PB005), or NULL when it is valid: non-empty text of at most
-- limits() max_queue_name_length characters that is not only whitespace
-- (the characters Python's str.isspace() accepts). Shared by every entry
-- point that takes a queue name, set-wise ones included.
create or replace function pgbatch._queue_problem(queue text)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when queue is null or length(queue) = 0
            then array['PB005', 'invalid queue name: must be non-empty text']
        when length(queue) > pgbatch._limit('max_queue_name_length')
            then array['PB005', format('invalid queue name: %s characters, at most %s allowed',
                                       length(queue), pgbatch._limit('max_queue_name_length'))]
        when btrim(queue, U&'\0009\000A\000B\000C\000D\001C\001D\001E\001F\0020\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\2028\2029\202F\205F\3000') = ''
            then array['PB005', 'invalid queue name: must not be only whitespace']
    end
$$;
