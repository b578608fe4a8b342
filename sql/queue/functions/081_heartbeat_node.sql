-- heartbeat_node: records that the node incarnation is alive. Returns false
-- when another incarnation registered the same node_id since (this process
-- is a zombie and should stop claiming).
create or replace function pgbatch.heartbeat_node(node_id text, boot_id uuid)
returns boolean
language plpgsql
as $$
begin
    perform pgbatch._relax_commit();
    update pgbatch.node n set heartbeat_at = pgbatch.now()
     where n.node_id = heartbeat_node.node_id and n.boot_id = heartbeat_node.boot_id;
    return found;
end
$$;
