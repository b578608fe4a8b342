-- web_nodes: the registered worker nodes, most recently heard from first,
-- with how long ago each heartbeat was (by the database clock) and whether
-- the node counts as alive: its last heartbeat is younger than
-- `stale_after` (default 60 seconds, a few maintenance intervals). A node
-- that stopped cleanly deregistered and is not listed. InvalidArgument
-- (PB007) for a NULL, negative or over-a-day stale_after.
create or replace function pgbatch.web_nodes(stale_after interval default '60 seconds')
returns table (node_id text, boot_id uuid, started_at timestamptz, heartbeat_at timestamptz,
               heartbeat_age interval, alive boolean, info jsonb)
language plpgsql
stable
as $$
declare
    v_now timestamptz := pgbatch.now();
begin
    if web_nodes.stale_after is null or web_nodes.stale_after <= interval '0'
       or web_nodes.stale_after > interval '1 day' then
        perform pgbatch._raise('PB007', format('invalid stale_after: %s, must be more than 0 and at most 1 day',
                                               coalesce(web_nodes.stale_after::text, 'NULL')));
    end if;
    return query
    select n.node_id, n.boot_id, n.started_at, n.heartbeat_at, v_now - n.heartbeat_at,
           v_now - n.heartbeat_at < web_nodes.stale_after, n.info
      from pgbatch.node n
     order by n.heartbeat_at desc, n.node_id;
end
$$;
