-- reap_expired: ends up to `limit` claims whose lease has expired (database
-- time): requeued at once (the attempt counts), or dead-lettered when it was
-- the last attempt. Safe on many nodes at once (FOR UPDATE SKIP LOCKED: each
-- expired claim is processed once). Announces the requeued jobs. Returns the
-- number of claims reaped. Commits without waiting for the WAL flush.
create or replace function pgbatch.reap_expired("limit" integer default 1000)
returns integer
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_n     integer := 0;
    v_state text;
    v_ready jsonb := '{}';
begin
    if reap_expired."limit" is null or reap_expired."limit" < 1 then
        perform pgbatch._raise('PB007', 'invalid limit: must be at least 1');
    end if;
    perform pgbatch._relax_commit();
    for r in
        select * from pgbatch.job j
         where j.state = 'claimed' and j.lease_expires_at < pgbatch.now()
         order by j.lease_expires_at
         limit reap_expired."limit"
           for update skip locked
    loop
        v_state := pgbatch._expire_claim(r, 'lease expired');
        v_n := v_n + 1;
        if v_state = 'pending' then
            v_ready := jsonb_set(v_ready, array[r.queue], to_jsonb(coalesce((v_ready ->> r.queue)::integer, 0) + 1));
        end if;
    end loop;
    perform pgbatch._announce(k, v::bigint) from jsonb_each_text(v_ready) as x(k, v);
    return v_n;
end
$$;
