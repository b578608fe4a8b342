-- pgbatch migration 0019_chunk_commit: a cheaper chunk commit. commit_chunk
-- keeps its name, parameters, result and errors; a commit that succeeds is now
-- one UPDATE each of the work item, the execution, the step and its context
-- (each checking its part of the fence), and the leases are extended when
-- due (after a commit a lease is never less than 90% of `lease`), so most
-- chunk commits change no indexed column. No other function changes.
-- FROZEN: never edit this file after release; 0019_chunk_commit.py pins its sha256.

-- ==== batch/functions/224_commit_chunk.sql ====
-- §4.2 chunk commit, the last call of the chunk's transaction (the writer's
-- same-database writes come before it, in the same transaction). Fenced by
-- the queue claim: locks the work item's row, checks `claim_token` and
-- extends its lease (as fence_claim, durable commit), then checks the
-- execution (FencedOut, PB046, see _batch_fence) and gives it the same
-- lease. Then, when the step's committed chunk count is `expected_seq`:
-- stores `context` as the checkpoint, chunk_seq + 1, adds the counters
-- (commit_count + 1) and returns applied = true with the new chunk_seq. When
-- chunk_seq is already `expected_seq` + 1, this chunk committed before (a
-- retry after a commit whose outcome was lost): nothing changes, applied =
-- false; the caller rolls its own writes back and continues after that
-- chunk. Any other chunk_seq, or a step that is not STARTED:
-- InvalidExecutionState (PB048). Also returns the execution's status and
-- whether a stop or pause was requested (the read-back the worker acts on at
-- this boundary). Counters must be >= 0 (InvalidArgument, PB007); the lease
-- is limits() min_lease_seconds to max_lease_seconds (PB007).
--
-- The lease is extended when due: when the work item's lease ends within
-- 90% of `lease` from now (or later than `lease` from now) it becomes now +
-- `lease`; otherwise it is kept. So after a commit the lease is never less
-- than 90% of `lease` and never more than `lease`, and most chunk commits
-- change no indexed column (the updates of the job, execution, step and
-- context rows are HOT). The path of a commit that succeeds is four
-- statements: the step's execution, then one UPDATE each of the job row,
-- the execution row, the step row (counters) and the context row
-- (checkpoint), each one checking its part of the fence; when one of them
-- matches no row, the checks run again one by one to say why (the errors
-- and their order are those of the locking path: PB047, PB001/PB003,
-- PB046, PB048).
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
    v_now    timestamptz := pgbatch.now();
    v_exec   bigint;
    v_step   text;
    v_seq    bigint;
    v_lease  timestamptz;
    v_status text;
    v_stop   boolean;
    v_pause  boolean;
    x        pgbatch.job_execution;
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
    -- the queue claim (fence_claim's checks and durability, its lease extended when due)
    if pgbatch._lease_problem(commit_chunk.lease) is not null then
        perform pgbatch._check(pgbatch._lease_problem(commit_chunk.lease));
    end if;
    if current_setting('pgbatch.relaxed', true) <> '' then
        perform pgbatch._durable_commit();
    end if;
    update pgbatch.job j
       set lease_expires_at = case
               when j.lease_expires_at between v_now + commit_chunk.lease * 0.9 and v_now + commit_chunk.lease
                   then j.lease_expires_at
               else v_now + commit_chunk.lease end
     where j.id = commit_chunk.job_id and j.claim_token = commit_chunk.claim_token
    returning j.lease_expires_at into v_lease;
    if not found then
        perform pgbatch._settled_result(commit_chunk.job_id, commit_chunk.claim_token, 'fence');
        perform pgbatch._raise('PB001', format('claim of job %s is lost', commit_chunk.job_id));
    end if;
    -- the execution: its current work item, running; its lease follows the work item's
    for attempt in 1 .. 2 loop
        update pgbatch.job_execution e
           set lease_expires_at = v_lease, last_updated = v_now
         where e.id = v_exec and e.queue_job_id = commit_chunk.job_id
           and e.status in ('STARTED', 'STOPPING', 'PAUSING')
        returning e.status, e.stop_requested_at is not null, e.pause_requested_at is not null
             into v_status, v_stop, v_pause;
        exit when found;
        x := pgbatch._batch_fence(v_exec, commit_chunk.job_id, commit_chunk.claim_token);  -- raises why
    end loop;
    if v_status is null then
        perform pgbatch._raise('PB046', format('fenced out of job execution %s', v_exec));
    end if;
    -- the counters, when the step is STARTED and this is the chunk it expects
    update pgbatch.step_execution se
       set commit_count = se.commit_count + 1,
           read_count = se.read_count + commit_chunk.read_count,
           write_count = se.write_count + commit_chunk.write_count,
           filter_count = se.filter_count + commit_chunk.filter_count,
           read_skip_count = se.read_skip_count + commit_chunk.read_skip_count,
           process_skip_count = se.process_skip_count + commit_chunk.process_skip_count,
           write_skip_count = se.write_skip_count + commit_chunk.write_skip_count,
           rollback_count = se.rollback_count + commit_chunk.rollback_count,
           last_updated = v_now, version = se.version + 1
     where se.id = commit_chunk.step_execution_id and se.status = 'STARTED'
       and (select c.chunk_seq from pgbatch.step_execution_context c
             where c.step_execution_id = commit_chunk.step_execution_id) = commit_chunk.expected_seq;
    if found then
        update pgbatch.step_execution_context c
           set context = commit_chunk.context, chunk_seq = c.chunk_seq + 1
         where c.step_execution_id = commit_chunk.step_execution_id and c.chunk_seq = commit_chunk.expected_seq
        returning c.chunk_seq into v_seq;
        if not found then  -- the step's checkpoint moved under the execution's lock: refuse the whole chunk
            perform pgbatch._raise('PB048', format('step execution %s: its checkpoint changed during the commit',
                                                   commit_chunk.step_execution_id));
        end if;
        chunk_seq := v_seq; applied := true;
        status := v_status; stop_requested := v_stop; pause_requested := v_pause;
        return next;
        return;
    end if;
    -- why not: the step's state and its committed chunk count, locked
    select se.status into v_step from pgbatch.step_execution se where se.id = commit_chunk.step_execution_id for update;
    select c.chunk_seq into v_seq from pgbatch.step_execution_context c
     where c.step_execution_id = commit_chunk.step_execution_id for update;
    if v_step <> 'STARTED' then
        perform pgbatch._raise('PB048', format('step execution %s is %s, not STARTED', commit_chunk.step_execution_id, v_step));
    end if;
    if v_seq = commit_chunk.expected_seq + 1 then
        chunk_seq := v_seq; applied := false;
        status := v_status; stop_requested := v_stop; pause_requested := v_pause;
        return next;
        return;
    end if;
    perform pgbatch._raise('PB048', format('step execution %s has %s committed chunks, not %s',
                                           commit_chunk.step_execution_id, v_seq, commit_chunk.expected_seq));
end
$$;

select pgbatch._apply_privileges();
