-- holds_lead: whether the node incarnation (node_id, boot_id) holds a valid
-- leadership lease of `scope` under `term` at this transaction's start
-- (pgbatch.now()). Leader-only work that must not run twice calls it first, in
-- its own transaction, and does nothing when it returns false. It takes no
-- lock (a stuck holder must never block a takeover), so it fences the start
-- of the work, not its whole duration: such work must still be safe when a
-- takeover happens while it runs (row locks, SKIP LOCKED, idempotent writes).
create or replace function pgbatch.holds_lead(
    node_id text,
    boot_id uuid,
    term    bigint,
    scope   text default 'maintenance'
)
returns boolean
language plpgsql
stable
as $$
#variable_conflict use_column
begin
    perform pgbatch._check_lead_args(holds_lead.node_id, holds_lead.boot_id, holds_lead.scope);
    if holds_lead.term is null or holds_lead.term < 1 then
        perform pgbatch._raise('PB007', 'invalid term: must be at least 1');
    end if;
    return exists (
        select 1 from pgbatch.leader l
         where l.scope = holds_lead.scope and l.node_id = holds_lead.node_id
           and l.boot_id = holds_lead.boot_id and l.term = holds_lead.term
           and l.lease_expires_at > pgbatch.now());
end
$$;
