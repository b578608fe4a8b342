-- Raises a problem found by one of the _*_problem functions: `problem` is
-- {sqlstate, message} (see _raise), or NULL when there is none.
create or replace function pgbatch._check(problem text[])
returns void
language plpgsql
as $$
begin
    if problem is not null then
        perform pgbatch._raise(problem[1], problem[2]);
    end if;
end
$$;
