-- try_lead: asks for (or renews) the leadership lease of `scope` for the node
-- incarnation (node_id, boot_id), in one transaction.
--
-- * No row yet, or the current lease has run out (lease_expires_at <=
--   pgbatch.now()): this node takes it, for `lease` from now, with the next
--   term (also when the lapsed lease was its own: it did not lead in between).
-- * This node holds a valid lease: it is renewed to now + `lease` (never
--   shortened); the term stays.
-- * Another node holds a valid lease: nothing changes.
--
-- Returns one row: whether this node leads now (is_leader), the term, the
-- holder's node_id and when the holder's lease expires. A node that was stuck past its lease
-- learns at its next call that it lost it (is_leader = false, or a new term).
-- Two nodes never hold a valid lease at the same database instant: a takeover
-- starts no earlier than the previous lease ended. A node must treat itself as
-- leader only until its own clock says `lease` has passed since it SENT this
-- call (the transaction, and so the expiry, starts no earlier than that).
--
-- `lease`: 1 second to 1 hour. It bounds how long a stuck leader stalls the
-- leader-only work of everyone (reaping, announcements, ...). Commits durably:
-- a lease recorded here must survive a server crash while its holder acts.
create or replace function pgbatch.try_lead(
    node_id text,
    boot_id uuid,
    lease   interval default '5 seconds',
    scope   text     default 'maintenance'
)
returns table (is_leader boolean, term bigint, leader_node_id text, lease_expires_at timestamptz)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pgbatch.now();
    r     pgbatch.leader;
begin
    perform pgbatch._check_lead_args(try_lead.node_id, try_lead.boot_id, try_lead.scope);
    if try_lead.lease is null or not isfinite(try_lead.lease)
       or try_lead.lease < interval '1 second' or try_lead.lease > interval '1 hour' then
        perform pgbatch._raise('PB007', format('invalid lease: %s, must be 1 second to 1 hour',
                                               coalesce(try_lead.lease::text, 'NULL')));
    end if;
    -- the common case of a follower: a valid lease held by someone else (no lock, no write)
    select * into r from pgbatch.leader l where l.scope = try_lead.scope;
    if found and r.lease_expires_at > v_now
       and (r.node_id <> try_lead.node_id or r.boot_id <> try_lead.boot_id) then
        return query select false, r.term, r.node_id, r.lease_expires_at;
        return;
    end if;
    insert into pgbatch.leader as l (scope, node_id, boot_id, term, acquired_at, renewed_at, lease_expires_at)
    values (try_lead.scope, try_lead.node_id, try_lead.boot_id, 1, v_now, v_now, v_now + try_lead.lease)
    on conflict (scope) do nothing
    returning * into r;
    if found then
        return query select true, r.term, r.node_id, r.lease_expires_at;
        return;
    end if;
    select * into r from pgbatch.leader l where l.scope = try_lead.scope for update;
    if r.lease_expires_at > v_now then
        if r.node_id <> try_lead.node_id or r.boot_id <> try_lead.boot_id then
            return query select false, r.term, r.node_id, r.lease_expires_at;
            return;
        end if;
        update pgbatch.leader l
           set renewed_at = v_now,
               lease_expires_at = greatest(l.lease_expires_at, v_now + try_lead.lease)
         where l.scope = try_lead.scope
        returning * into r;
    else
        update pgbatch.leader l
           set node_id = try_lead.node_id, boot_id = try_lead.boot_id, term = l.term + 1,
               acquired_at = v_now, renewed_at = v_now, lease_expires_at = v_now + try_lead.lease
         where l.scope = try_lead.scope
        returning * into r;
    end if;
    return query select true, r.term, r.node_id, r.lease_expires_at;
end
$$;
