-- Validates the arguments shared by try_lead, resign_lead and holds_lead:
-- node_id 1 to 200 characters (as register_node), a boot_id, and a scope of
-- 1 to 128 characters that is not only whitespace.
create or replace function pgbatch._check_lead_args(node_id text, boot_id uuid, scope text)
returns void
language plpgsql
as $$
begin
    if node_id is null or length(node_id) = 0 or length(node_id) > 200 then
        perform pgbatch._raise('PB007', 'invalid node_id: must be 1 to 200 characters');
    end if;
    if boot_id is null then
        perform pgbatch._raise('PB007', 'invalid boot_id: must not be NULL');
    end if;
    if scope is null or length(scope) > 128 or scope !~ '[^[:space:]]' then
        perform pgbatch._raise('PB007', 'invalid scope: must be 1 to 128 characters, not only whitespace');
    end if;
end
$$;
