-- resign_lead: gives up the leadership lease of `scope` if the node
-- incarnation (node_id, boot_id) holds it and it is still valid: the lease
-- ends now, so the next node that calls try_lead takes over at once instead of
-- waiting for it to run out (a worker calls this at a clean shutdown). Returns
-- whether a lease was given up.
create or replace function pgbatch.resign_lead(
    node_id text,
    boot_id uuid,
    scope   text default 'maintenance'
)
returns boolean
language plpgsql
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pgbatch.now();
begin
    perform pgbatch._check_lead_args(resign_lead.node_id, resign_lead.boot_id, resign_lead.scope);
    update pgbatch.leader l
       set lease_expires_at = v_now
     where l.scope = resign_lead.scope and l.node_id = resign_lead.node_id
       and l.boot_id = resign_lead.boot_id and l.lease_expires_at > v_now;
    return found;
end
$$;
