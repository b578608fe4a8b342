-- deregister_node: removes the node's registration at a clean shutdown (only
-- when boot_id still matches). Returns whether a row was removed.
create or replace function pgbatch.deregister_node(node_id text, boot_id uuid)
returns boolean
language plpgsql
as $$
begin
    delete from pgbatch.node n
     where n.node_id = deregister_node.node_id and n.boot_id = deregister_node.boot_id;
    return found;
end
$$;
