-- Resolves a settlement call whose claim is not (or no longer) live:
-- - the same token already settled the job with the same operation: return
--   that call's result (a retry after a connection lost at COMMIT);
-- - the job exists but this token does not hold it: ClaimLost (PB001);
-- - no such job at all: JobNotFound (PB003).
-- `op` is 'ack', 'nack', 'dead_letter' or 'release'.
create or replace function pgbatch._settled_result(job_id uuid, claim_token uuid, op text)
returns jsonb
language plpgsql
as $$
declare
    v_result jsonb;
    v_state  text;
begin
    select j.settled_result, j.state into v_result, v_state
      from pgbatch.job j
     where j.id = _settled_result.job_id;
    if found then
        if v_result is not null and v_result ->> 'op' = op
           and (select j.settled_token from pgbatch.job j where j.id = _settled_result.job_id) = claim_token then
            return v_result;
        end if;
        perform pgbatch._raise('PB001',
            format('claim lost: job %s is %s and token %s does not hold it', job_id, v_state, claim_token),
            'the lease expired and the job was requeued, or another worker claimed it');
    end if;
    select a.result, a.state into v_result, v_state
      from pgbatch.job_archive a
     where a.id = _settled_result.job_id and a.claim_token = _settled_result.claim_token;
    if found and v_result ->> 'op' = op then
        return v_result;
    end if;
    select a.state into v_state from pgbatch.job_archive a where a.id = _settled_result.job_id;
    if found then
        perform pgbatch._raise('PB001',
            format('claim lost: job %s is already %s', job_id, v_state),
            'the job was settled by another claim or call');
    end if;
    perform pgbatch._raise('PB003', format('job %s not found', job_id));
    return null;
end
$$;
