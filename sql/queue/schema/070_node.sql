-- Worker node registry. A node that restarts with the same node_id and a new
-- boot_id releases the claims of its previous incarnation at once
-- (register_node()), instead of waiting for their leases to expire.
create table pgbatch.node (
    node_id      text        primary key,
    boot_id      uuid        not null,
    started_at   timestamptz not null,
    heartbeat_at timestamptz not null,
    info         jsonb       not null default '{}'
);
