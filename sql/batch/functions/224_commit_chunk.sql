-- §4.2 chunk commit, the last call of the chunk's transaction (the writer's
-- same-database writes come before it, in the same transaction). Fenced by
-- the queue claim: locks the work item's row, checks `claim_token` and
-- extends its lease to now + `lease` (as fence_claim, durable commit), then
-- checks the execution (FencedOut, PB046, see _batch_fence). Then, when the
-- step's committed chunk count is `expected_seq`: stores `context` as the
-- checkpoint, chunk_seq + 1, adds the counters (commit_count + 1) and returns
-- applied = true with the new chunk_seq. When chunk_seq is already
-- `expected_seq` + 1, this chunk committed before (a retry after a commit
-- whose outcome was lost): nothing changes, applied = false; the caller
-- rolls its own writes back and continues after that chunk. Any other
-- chunk_seq, or a step that is not STARTED: InvalidExecutionState (PB048).
-- Also returns the execution's status and whether a stop or pause was
-- requested (the read-back the worker acts on at this boundary). Counters
-- must be >= 0 (InvalidArgument, PB007).
create or replace function pgbatch.commit_chunk(step_execution_id bigint, job_id uuid, claim_token uuid,
    expected_seq bigint, context jsonb,
    read_count bigint default 0, write_count bigint default 0, filter_count bigint default 0,
    read_skip_count bigint default 0, process_skip_count bigint default 0, write_skip_count bigint default 0,
    rollback_count bigint default 0, lease interval default '30 seconds')
returns table (chunk_seq bigint, applied boolean, status text, stop_requested boolean, pause_requested boolean)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_exec  bigint;
    v_step  text;
    v_seq   bigint;
    v_lease timestamptz;
    x       pgbatch.job_execution;
begin
    if least(commit_chunk.read_count, commit_chunk.write_count, commit_chunk.filter_count,
             commit_chunk.read_skip_count, commit_chunk.process_skip_count, commit_chunk.write_skip_count,
             commit_chunk.rollback_count) < 0 or commit_chunk.expected_seq < 0 then
        perform pgbatch._raise('PB007', 'invalid argument: counters and expected_seq must be >= 0');
    end if;
    if commit_chunk.context is null or jsonb_typeof(commit_chunk.context) <> 'object' then
        perform pgbatch._raise('PB007', 'invalid argument: context must be a JSON object');
    end if;
    select se.job_execution_id into v_exec from pgbatch.step_execution se where se.id = commit_chunk.step_execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('step execution %s not found', commit_chunk.step_execution_id));
    end if;
    select f.expires_at into v_lease from pgbatch.fence_claim(commit_chunk.job_id, commit_chunk.claim_token,
                                                              commit_chunk.lease) f;
    x := pgbatch._batch_fence(v_exec, commit_chunk.job_id, commit_chunk.claim_token);
    select se.status into v_step from pgbatch.step_execution se where se.id = commit_chunk.step_execution_id for update;
    select c.chunk_seq into v_seq from pgbatch.step_execution_context c
     where c.step_execution_id = commit_chunk.step_execution_id for update;
    if v_step <> 'STARTED' then
        perform pgbatch._raise('PB048', format('step execution %s is %s, not STARTED', commit_chunk.step_execution_id, v_step));
    end if;
    update pgbatch.job_execution e
       set lease_expires_at = v_lease, last_updated = pgbatch.now()
     where e.id = x.id;
    if v_seq = commit_chunk.expected_seq + 1 then
        return query select v_seq, false, x.status, x.stop_requested_at is not null, x.pause_requested_at is not null;
        return;
    end if;
    if v_seq <> commit_chunk.expected_seq then
        perform pgbatch._raise('PB048', format('step execution %s has %s committed chunks, not %s',
                                               commit_chunk.step_execution_id, v_seq, commit_chunk.expected_seq));
    end if;
    update pgbatch.step_execution_context c
       set context = commit_chunk.context, chunk_seq = c.chunk_seq + 1
     where c.step_execution_id = commit_chunk.step_execution_id;
    update pgbatch.step_execution se
       set commit_count = se.commit_count + 1,
           read_count = se.read_count + commit_chunk.read_count,
           write_count = se.write_count + commit_chunk.write_count,
           filter_count = se.filter_count + commit_chunk.filter_count,
           read_skip_count = se.read_skip_count + commit_chunk.read_skip_count,
           process_skip_count = se.process_skip_count + commit_chunk.process_skip_count,
           write_skip_count = se.write_skip_count + commit_chunk.write_skip_count,
           rollback_count = se.rollback_count + commit_chunk.rollback_count,
           last_updated = pgbatch.now(), version = se.version + 1
     where se.id = commit_chunk.step_execution_id;
    return query select v_seq + 1, true, x.status, x.stop_requested_at is not null, x.pause_requested_at is not null;
end
$$;
