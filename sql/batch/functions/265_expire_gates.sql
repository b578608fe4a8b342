-- The gate-timeout sweep (BATCH.md §4.4): every node's gate-timeout service
-- calls it. Each PENDING approval whose expires_at has passed (database
-- time) while its execution waits AWAITING_APPROVAL gets its gate's
-- on_timeout decision: 'reject' -> T15 (the execution FAILED,
-- APPROVAL_REJECTED), 'approve' -> T14, decided_by 'timeout', event
-- `reject` / `approve` with request_id 'gate-timeout:<approval id>' and
-- detail timeout = true. Rows are taken with FOR UPDATE SKIP LOCKED and the
-- decision is the same double compare-and-set as approve_gate's, so each
-- timeout is applied exactly once however many nodes sweep, and a decision
-- that commits first wins. At most `batch_size` (1 to 10000, else
-- InvalidArgument, PB007) per call; returns how many it decided.
create or replace function pgbatch.expire_gates(batch_size integer default 100)
returns integer
language plpgsql
as $$
declare
    r     record;
    v_n   integer := 0;
    v_res record;
begin
    if expire_gates.batch_size is null or expire_gates.batch_size not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: batch_size must be 1 to 10000');
    end if;
    for r in
        select a.id, a.job_execution_id, a.gate_name, a.on_timeout, a.expires_at
          from pgbatch.approval a join pgbatch.job_execution x on x.id = a.job_execution_id
         where a.status = 'PENDING' and a.expires_at is not null and a.expires_at <= pgbatch.now()
           and x.status = 'AWAITING_APPROVAL'
         order by a.expires_at, a.id
         limit expire_gates.batch_size
           for update of a, x skip locked
    loop
        select * into v_res
          from pgbatch._batch_decide_gate(r.job_execution_id, r.gate_name,
                                          case r.on_timeout when 'approve' then 'APPROVED' else 'REJECTED' end,
                                          'timeout',
                                          format('no decision before %s (on_timeout %s)', r.expires_at, r.on_timeout),
                                          'gate-timeout:' || r.id,
                                          case r.on_timeout when 'approve' then 'approve' else 'reject' end,
                                          jsonb_build_object('timeout', true));
        if v_res.applied then
            v_n := v_n + 1;
        end if;
    end loop;
    return v_n;
end
$$;
