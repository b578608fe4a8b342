-- Raises a pgbatch error with its own SQLSTATE (class PB). The codes, names,
-- and Python classes are listed once, in pgbatch/_errors.py.
create or replace function pgbatch._raise(code text, message text, detail text default null)
returns void
language plpgsql
as $$
begin
    if detail is null then
        raise exception using errcode = code, message = message;
    end if;
    raise exception using errcode = code, message = message, detail = detail;
end
$$;
