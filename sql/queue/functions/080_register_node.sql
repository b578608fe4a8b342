-- register_node: a worker process announces itself under a stable node_id
-- with a fresh boot_id. When the node_id was last registered with another
-- boot_id (the process restarted after a crash), the claims recorded with
-- claimed_by = node_id belong to that dead incarnation: they are ended at
-- once (requeued, or dead-lettered at their last attempt) instead of waiting
-- for their leases. Returns the number of claims released that way.
-- node_id: 1 to limits() max_node_id_length characters, not only whitespace;
-- boot_id: not NULL (InvalidArgument, PB007); info: at most
-- max_node_info_bytes (ValueTooLarge, PB012).
create or replace function pgbatch.register_node(node_id text, boot_id uuid, info jsonb default '{}')
returns integer
language plpgsql
as $$
#variable_conflict use_column
declare
    v_old   uuid;
    v_n     integer := 0;
    r       pgbatch.job;
    v_ready jsonb := '{}';
begin
    if register_node.node_id is null or length(register_node.node_id) = 0
       or length(register_node.node_id) > pgbatch._limit('max_node_id_length')
       or btrim(register_node.node_id) = '' then
        perform pgbatch._raise('PB007', format('invalid node_id: must be 1 to %s characters, not only spaces',
                                               pgbatch._limit('max_node_id_length')));
    end if;
    if register_node.boot_id is null then
        perform pgbatch._raise('PB007', 'invalid boot_id: must not be NULL');
    end if;
    if pg_column_size(register_node.info) > pgbatch._limit('max_node_info_bytes') then
        perform pgbatch._raise('PB012', format('node info too large: %s bytes, at most %s allowed',
                                               pg_column_size(register_node.info), pgbatch._limit('max_node_info_bytes')));
    end if;
    select n.boot_id into v_old from pgbatch.node n where n.node_id = register_node.node_id for update;
    insert into pgbatch.node as n (node_id, boot_id, started_at, heartbeat_at, info)
    values (register_node.node_id, register_node.boot_id, pgbatch.now(), pgbatch.now(), coalesce(register_node.info, '{}'))
    on conflict (node_id) do update
       set boot_id = excluded.boot_id, started_at = excluded.started_at,
           heartbeat_at = excluded.heartbeat_at, info = excluded.info;
    if v_old is not null and v_old <> register_node.boot_id then
        for r in select * from pgbatch.job j
                  where j.state = 'claimed' and j.claimed_by = register_node.node_id
                    for update skip locked
        loop
            if pgbatch._expire_claim(r, 'node restarted') = 'pending' then
                v_ready := jsonb_set(v_ready, array[r.queue], to_jsonb(coalesce((v_ready ->> r.queue)::integer, 0) + 1));
            end if;
            v_n := v_n + 1;
        end loop;
        perform pgbatch._announce(k, v::bigint) from jsonb_each_text(v_ready) as x(k, v);
    end if;
    return v_n;
end
$$;
