-- The approvals of gates, for operators: `status` PENDING (the inbox: what
-- waits for a decision), DECIDED (APPROVED, REJECTED or EXPIRED: who decided
-- and when), one of APPROVED, REJECTED, EXPIRED, or NULL for all; newest
-- first, at most `limit` (1 to 10000). InvalidArgument (PB007) otherwise.
-- decided_by 'timeout' marks a decision of the gate-timeout sweep. The
-- column approval_status is the approval's status.
create or replace function pgbatch.approvals(status text default null, "limit" integer default 100)
returns table (approval_id bigint, execution_id bigint, job_name text, gate_name text, approval_status text,
               execution_status text, requested_at timestamptz, expires_at timestamptz, on_timeout text,
               decided_by text, decided_at timestamptz, comment text)
language plpgsql
stable
as $$
begin
    if approvals."limit" is null or approvals."limit" not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: limit must be 1 to 10000');
    end if;
    if approvals.status is not null
       and approvals.status not in ('PENDING', 'DECIDED', 'APPROVED', 'REJECTED', 'EXPIRED') then
        perform pgbatch._raise('PB007', format('invalid argument: status must be PENDING, DECIDED, APPROVED, '
                                               'REJECTED or EXPIRED, not %s', to_json(approvals.status)));
    end if;
    return query
    select a.id, a.job_execution_id, i.job_name, a.gate_name, a.status, x.status, a.requested_at, a.expires_at,
           a.on_timeout, a.decided_by, a.decided_at, a.comment
      from pgbatch.approval a
      join pgbatch.job_execution x on x.id = a.job_execution_id
      join pgbatch.job_instance i on i.id = x.instance_id
     where approvals.status is null or a.status = approvals.status
        or (approvals.status = 'DECIDED' and a.status <> 'PENDING')
     order by a.id desc
     limit approvals."limit";
end
$$;
