-- Takes work item `job_id` out of the live queue (archived as cancelled, with
-- `reason` as its last error), whatever its state: recovery replaces it, and a
-- worker that still holds a claim on it finds the claim lost at its next
-- fenced call, renewal or settlement. Nothing when it is not live. The caller
-- holds the execution's lock; the item's row is locked here.
create or replace function pgbatch._batch_retire_item(job_id uuid, reason text)
returns void
language plpgsql
as $$
declare
    r pgbatch.job;
begin
    delete from pgbatch.job j where j.id = _batch_retire_item.job_id returning j.* into r;
    if found then
        perform pgbatch._archive(r, 'cancelled', r.claim_token, '{"op": "batch_recover"}',
                                 jsonb_build_object('type', 'BatchRecovered', 'message', _batch_retire_item.reason,
                                                    'worker', r.claimed_by, 'attempt', r.attempt));
    end if;
end
$$;
