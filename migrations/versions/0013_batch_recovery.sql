-- pgbatch migration 0013_batch_recovery: recovery of batch executions after
-- host loss (docs/batch.md "Recovery"): the recovery policies and the recovery
-- limit (_batch_recover, applied by start_execution when a lost worker's work
-- item is claimed again, and by the recovery sweep recover_executions), the
-- new executions of RestartAll / RestartFrom (job_execution.fresh_from_step),
-- the hand-off at shutdown (handoff_execution), execution_control, UNKNOWN
-- steps (end_step), recover_execution, cancel_execution, on_shutdown and
-- same-version definition changes (register_job).
-- FROZEN: never edit this file after release; 0013_batch_recovery.py pins its sha256.

-- ==== batch/schema/201_batch_recovery.sql ====
-- Recovery after host loss (BATCH.md §7): RestartAll and RestartFrom start a
-- new execution whose steps from index fresh_from_step (0-based) on run from
-- scratch (empty contexts, run even when they completed before); the steps
-- before it are skipped. NULL for every other execution (the restart rules of
-- start_step apply).
alter table pgbatch.job_execution add column if not exists fresh_from_step integer;

-- ==== batch/functions/210_register_job.sql ====
-- Registers a job definition a worker can run, and returns its fingerprint
-- (BATCH.md §1): lowercase hex sha256 of the canonical JSON of
-- {"steps": [[name, kind, reader, writer, chunk_size], ...], "version": version}.
-- `definition` is an object:
--   steps            non-empty array of {"name", "kind": "chunk"|"tasklet"|"gate",
--                    "reader", "writer" (class names, chunk steps), "chunk_size",
--                    "start_limit" (positive integer, default unlimited),
--                    "allow_start_if_complete" (default false)}; names unique
--   version          optional user version (any JSON value)
--   restartable      default true
--   recovery_policy  ResumeForward (default; Fail when not restartable),
--                    RestartAll, RestartFrom:<step>, Fail
--   max_recoveries   default 5: a ResumeForward recovery beyond it ends the
--                    execution FAILED (RECOVERY_LIMIT)
--   on_shutdown      what a worker that shuts down does with a running
--                    execution: handoff (default: commit the chunk, hand the
--                    execution back, STARTING) or stop (STOPPED)
--   queue            the batch queue of its work items, default 'batch'
-- InvalidJobDefinition (PB041) for anything else (also a recovery policy other
-- than Fail for a job that is not restartable). A definition whose "version"
-- is set and equals the version of a registered definition of the job with
-- other steps is JobDefinitionChangedError (PB049): a changed definition needs
-- a new version, so that executions recover and resume only with the steps
-- they started with. Registering the same definition again only updates its
-- last_registered_at; launches use the definition registered last.
create or replace function pgbatch.register_job(job_name text, definition jsonb)
returns text
language plpgsql
as $$
declare
    v_step     jsonb;
    v_names    text[] := '{}';
    v_fp_steps jsonb := '[]';
    v_fp       text;
    v_policy   text;
    v_now      timestamptz := pgbatch.now();
    v_def      jsonb := definition;
    k          text;
begin
    if job_name is null or length(btrim(job_name)) = 0 or length(job_name) > 200 then
        perform pgbatch._raise('PB041', 'invalid job definition: job_name must be non-empty text of at most 200 characters');
    end if;
    if jsonb_typeof(v_def) is distinct from 'object' then
        perform pgbatch._raise('PB041', 'invalid job definition: must be a JSON object');
    end if;
    for k in select jsonb_object_keys(v_def) loop
        if k not in ('steps', 'version', 'restartable', 'recovery_policy', 'max_recoveries', 'on_shutdown', 'queue') then
            perform pgbatch._raise('PB041', format('invalid job definition: unknown key %s', to_json(k)));
        end if;
    end loop;
    if jsonb_typeof(v_def -> 'steps') is distinct from 'array' or jsonb_array_length(v_def -> 'steps') = 0 then
        perform pgbatch._raise('PB041', 'invalid job definition: "steps" must be a non-empty array');
    end if;
    for v_step in select s from jsonb_array_elements(v_def -> 'steps') s loop
        if jsonb_typeof(v_step) <> 'object' or jsonb_typeof(v_step -> 'name') is distinct from 'string'
           or length(v_step ->> 'name') = 0 then
            perform pgbatch._raise('PB041', 'invalid job definition: every step needs a non-empty "name"');
        end if;
        for k in select jsonb_object_keys(v_step) loop
            if k not in ('name', 'kind', 'reader', 'writer', 'chunk_size', 'start_limit', 'allow_start_if_complete') then
                perform pgbatch._raise('PB041', format('invalid job definition: step %s: unknown key %s',
                                                       to_json(v_step ->> 'name'), to_json(k)));
            end if;
        end loop;
        if v_step ->> 'name' = any(v_names) then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s appears twice', to_json(v_step ->> 'name')));
        end if;
        v_names := v_names || (v_step ->> 'name');
        if coalesce(v_step ->> 'kind', '') not in ('chunk', 'tasklet', 'gate') then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "kind" must be chunk, tasklet or gate',
                                                   to_json(v_step ->> 'name')));
        end if;
        if v_step ? 'start_limit' and not (jsonb_typeof(v_step -> 'start_limit') = 'number'
                                           and (v_step ->> 'start_limit') ~ '^[0-9]+$'
                                           and (v_step ->> 'start_limit')::numeric between 1 and 2147483647) then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "start_limit" must be a positive integer',
                                                   to_json(v_step ->> 'name')));
        end if;
        if v_step ? 'chunk_size' and not (jsonb_typeof(v_step -> 'chunk_size') = 'number'
                                          and (v_step ->> 'chunk_size') ~ '^[0-9]+$'
                                          and (v_step ->> 'chunk_size')::numeric between 1 and 2147483647) then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "chunk_size" must be a positive integer',
                                                   to_json(v_step ->> 'name')));
        end if;
        if v_step ? 'allow_start_if_complete' and jsonb_typeof(v_step -> 'allow_start_if_complete') <> 'boolean' then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "allow_start_if_complete" must be true or false',
                                                   to_json(v_step ->> 'name')));
        end if;
        v_fp_steps := v_fp_steps || jsonb_build_array(jsonb_build_array(
            v_step -> 'name', v_step -> 'kind', coalesce(v_step -> 'reader', 'null'),
            coalesce(v_step -> 'writer', 'null'), coalesce(v_step -> 'chunk_size', 'null')));
    end loop;
    if v_def ? 'restartable' and jsonb_typeof(v_def -> 'restartable') <> 'boolean' then
        perform pgbatch._raise('PB041', 'invalid job definition: "restartable" must be true or false');
    end if;
    if v_def ? 'max_recoveries' and not (jsonb_typeof(v_def -> 'max_recoveries') = 'number'
                                         and (v_def ->> 'max_recoveries') ~ '^[0-9]+$'
                                         and (v_def ->> 'max_recoveries')::numeric <= 2147483647) then
        perform pgbatch._raise('PB041', 'invalid job definition: "max_recoveries" must be a non-negative integer');
    end if;
    if v_def ? 'queue' then
        if jsonb_typeof(v_def -> 'queue') <> 'string' then
            perform pgbatch._raise('PB041', 'invalid job definition: "queue" must be a string');
        end if;
        perform pgbatch._check(pgbatch._queue_problem(v_def ->> 'queue'));
    end if;
    v_policy := coalesce(v_def ->> 'recovery_policy',
                         case when coalesce((v_def ->> 'restartable')::boolean, true) then 'ResumeForward' else 'Fail' end);
    if not (v_policy in ('ResumeForward', 'RestartAll', 'Fail')
            or (v_policy like 'RestartFrom:%' and substr(v_policy, 13) = any(v_names))) then
        perform pgbatch._raise('PB041', format('invalid job definition: unknown recovery_policy %s '
                                               '(ResumeForward, RestartAll, RestartFrom:<step>, Fail)', to_json(v_policy)));
    end if;
    if not coalesce((v_def ->> 'restartable')::boolean, true) and v_policy <> 'Fail' then
        perform pgbatch._raise('PB041', format('invalid job definition: recovery_policy %s needs a restartable job '
                                               '(a job that is not restartable recovers with Fail)', to_json(v_policy)));
    end if;
    if v_def ? 'on_shutdown' and coalesce(v_def ->> 'on_shutdown', '') not in ('handoff', 'stop') then
        perform pgbatch._raise('PB041', 'invalid job definition: "on_shutdown" must be handoff or stop');
    end if;
    v_def := v_def || jsonb_build_object('recovery_policy', v_policy);

    v_fp := encode(sha256(convert_to(pgbatch._canonical_json(jsonb_build_object(
                'steps', v_fp_steps, 'version', coalesce(v_def -> 'version', 'null'))), 'UTF8')), 'hex');
    if coalesce(v_def -> 'version', 'null') <> 'null' and exists (
        select 1 from pgbatch.job_definition d
         where d.job_name = register_job.job_name and d.fingerprint <> v_fp
           and d.definition -> 'version' = v_def -> 'version') then
        perform pgbatch._raise('PB049', format('job %s: version %s is already registered with other steps',
                                               to_json(register_job.job_name), v_def -> 'version'),
                               'change the version when the steps, their readers, writers or chunk sizes change');
    end if;
    insert into pgbatch.job_definition as d (job_name, fingerprint, definition, registered_at, last_registered_at)
    values (register_job.job_name, v_fp, v_def, v_now, v_now)
    on conflict on constraint job_definition_pkey do update
        set last_registered_at = greatest(d.last_registered_at, excluded.last_registered_at);
    return v_fp;
end
$$;

-- ==== batch/functions/216_batch_retire_item.sql ====
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

-- ==== batch/functions/217_batch_relaunch.sql ====
-- The new execution of a RestartAll or RestartFrom recovery (BATCH.md §7), in
-- the transaction that ended `old` (FAILED, HOST_LOST): same instance,
-- parameters and definition, STARTING at step index `fresh_from` (0-based);
-- that step and the later ones run from scratch (fresh_from_step), the earlier
-- ones are skipped. The recovery count carries over (`recovery_count`), so
-- max_recoveries bounds a crash loop across the executions. The job context is
-- empty for RestartAll (fresh_from = 0) and copied otherwise. Event `launched`
-- (detail: restart_of, reason), its first work item. Returns its id.
create or replace function pgbatch._batch_relaunch(old pgbatch.job_execution, fresh_from integer,
    recovery_count integer, reason text)
returns bigint
language plpgsql
as $$
declare
    v_step text;
    v_exec bigint;
    v_ctx  jsonb := '{}';
    v_now  timestamptz := pgbatch.now();
begin
    perform 1 from pgbatch.job_instance i where i.id = old.instance_id for update;
    select d.value ->> 'name' into v_step
      from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = old.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = old.instance_id)
       and d.ord = _batch_relaunch.fresh_from + 1;
    if _batch_relaunch.fresh_from > 0 then
        select c.context into v_ctx from pgbatch.job_execution_context c where c.job_execution_id = old.id;
    end if;
    insert into pgbatch.job_execution
        (instance_id, status, params, definition_fp, recovery_policy, queue, current_step, recovery_count,
         fresh_from_step, create_time, last_updated)
    values (old.instance_id, 'STARTING', old.params, old.definition_fp, old.recovery_policy, old.queue, v_step,
            _batch_relaunch.recovery_count, _batch_relaunch.fresh_from, v_now, v_now)
    returning id into v_exec;
    insert into pgbatch.job_execution_context (job_execution_id, context) values (v_exec, coalesce(v_ctx, '{}'));
    perform pgbatch._batch_event(v_exec, null, 'launched', null, 'STARTING', null,
                                 jsonb_build_object('restart_of', old.id, 'reason', _batch_relaunch.reason,
                                                    'policy', old.recovery_policy, 'step', v_step));
    perform pgbatch._batch_enqueue(v_exec, v_step);
    return v_exec;
end
$$;

-- ==== batch/functions/221_start_execution.sql ====
-- T2: the worker that claimed work item `job_id` (with `claim_token`) of
-- execution `execution_id` takes it over: STARTING -> STARTED, lease_owner =
-- the claim's claimed_by, lease_boot_id = `boot_id` (default: the boot the
-- node registered last), lease_epoch + 1, start_time set once, event
-- `claimed`. A STARTED, STOPPING or PAUSING execution whose current work item
-- this is was left by a lost worker (its claim was reaped, released or ended
-- by its node's restart, and claimed again): it is recovered first
-- (_batch_recover with the job's policy, event `recovered`); when that leaves
-- it STARTING (ResumeForward) this claim takes it over as above. Any other
-- status (stopped, abandoned, failed by the recovery limit, a stale item)
-- changes nothing more: the returned status says so and the worker acks its
-- item. Returns (status, lease_epoch, current_step, job_name,
-- definition_fp): the worker runs the definition it registered with that
-- fingerprint. ClaimLost (PB001) when the claim is not held;
-- JobExecutionNotFound (PB047).
create or replace function pgbatch.start_execution(execution_id bigint, job_id uuid, claim_token uuid,
    boot_id uuid default null)
returns table (status text, lease_epoch bigint, current_step text, job_name text, definition_fp text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_owner text;
    v_lease timestamptz;
    v_boot  uuid;
    x       pgbatch.job_execution;
begin
    select j.claimed_by, j.lease_expires_at into v_owner, v_lease from pgbatch.job j
     where j.id = start_execution.job_id and j.claim_token = start_execution.claim_token
       for update;
    if not found then
        perform pgbatch._settled_result(start_execution.job_id, start_execution.claim_token, 'fence');
        perform pgbatch._raise('PB001', format('claim of job %s is lost', start_execution.job_id));
    end if;
    select * into x from pgbatch.job_execution e where e.id = start_execution.execution_id for update;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', start_execution.execution_id));
    end if;
    if x.queue_job_id is distinct from start_execution.job_id
       or x.status not in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING') then
        return query select x.status, x.lease_epoch, x.current_step,
                            (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                            x.definition_fp::text;
        return;
    end if;
    if x.status <> 'STARTING' then
        perform pgbatch._batch_recover(x.id, 'its work item was claimed again (the last worker was lost)', true);
        select * into x from pgbatch.job_execution e where e.id = start_execution.execution_id;
        if x.status <> 'STARTING' then
            return query select x.status, x.lease_epoch, x.current_step,
                                (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                                x.definition_fp::text;
            return;
        end if;
    end if;
    v_boot := coalesce(start_execution.boot_id, (select n.boot_id from pgbatch.node n where n.node_id = v_owner));
    update pgbatch.job_execution e
       set status = 'STARTED', lease_owner = v_owner, lease_boot_id = v_boot, lease_epoch = e.lease_epoch + 1,
           lease_expires_at = v_lease, start_time = coalesce(e.start_time, pgbatch.now()),
           last_updated = pgbatch.now(), version = e.version + 1
     where e.id = x.id
    returning * into x;
    perform pgbatch._batch_event(x.id, null, 'claimed', 'STARTING', x.status, null,
                                 jsonb_build_object('job_id', start_execution.job_id));
    return query select x.status, x.lease_epoch, x.current_step,
                        (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                        x.definition_fp::text;
end
$$;

-- ==== batch/functions/223_start_step.sql ====
-- §4.1 step start, by the worker holding work item `job_id` of execution
-- `execution_id` (fenced, see _batch_fence). Returns (step_execution_id,
-- action, context, chunk_seq); action is
--   run                    run the step from `context` (the checkpoint) and
--                          commit chunks from `chunk_seq` on: the STARTED or
--                          PAUSED row of this execution is reused (resume,
--                          recovery, hand-off), or a new row is inserted with
--                          the context of the instance's last execution of the
--                          step when that ended FAILED or STOPPED (restart from
--                          checkpoint), empty otherwise
--   skip                   the step COMPLETED in an earlier execution of the
--                          instance (and not allow_start_if_complete), or was
--                          ABANDONED: go on with the next step
--   completed              the same, for the last step: the execution is now
--                          COMPLETED (ack the work item)
--   stopped                a stop was requested: the execution is now STOPPED
--                          (ack the work item)
--   start_limit_exceeded   the step started start_limit times over the
--                          instance's executions: the execution is now FAILED,
--                          exit START_LIMIT_EXCEEDED (StartLimitExceededError)
--   failed                 the step's last execution is UNKNOWN: the execution
--                          is now FAILED, exit STEP_UNKNOWN
-- In an execution started by a RestartAll or RestartFrom recovery, the steps
-- from its fresh_from_step on ignore the earlier executions: a new row, an
-- empty context (start_limit still counts their starts).
-- InvalidExecutionState (PB048) for a step the definition does not have, or
-- one that already ended in this execution.
create or replace function pgbatch.start_step(execution_id bigint, step_name text, job_id uuid, claim_token uuid)
returns table (step_execution_id bigint, action text, context jsonb, chunk_seq bigint)
language plpgsql
as $$
#variable_conflict use_column
declare
    x        pgbatch.job_execution;
    v_step   jsonb;
    v_index  integer;
    s        pgbatch.step_execution;
    v_last   pgbatch.step_execution;
    v_starts bigint;
    v_ctx    jsonb := '{}';
    v_seq    bigint;
    v_now    timestamptz := pgbatch.now();
begin
    x := pgbatch._batch_fence(start_step.execution_id, start_step.job_id, start_step.claim_token);
    select d.value, d.ord - 1 into v_step, v_index
      from pgbatch.job_definition jd,
           jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
       and d.value ->> 'name' = start_step.step_name;
    if not found then
        perform pgbatch._raise('PB048', format('job execution %s has no step %s', x.id, to_json(start_step.step_name)));
    end if;
    if x.status = 'STOPPING' then
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped');
        return query select null::bigint, 'stopped'::text, null::jsonb, null::bigint;
        return;
    end if;

    select * into s from pgbatch.step_execution se
     where se.job_execution_id = x.id and se.step_name = start_step.step_name for update;
    if found then
        if s.status not in ('STARTED', 'PAUSED') then
            perform pgbatch._raise('PB048', format('step %s of job execution %s is %s and cannot start again',
                                                   to_json(s.step_name), x.id, s.status));
        end if;
        if s.status = 'PAUSED' then
            update pgbatch.step_execution se set status = 'STARTED', last_updated = v_now, version = se.version + 1
             where se.id = s.id;
        end if;
        update pgbatch.job_execution e set current_step = s.step_name where e.id = x.id;
        return query select s.id, 'run'::text, c.context, c.chunk_seq
                       from pgbatch.step_execution_context c where c.step_execution_id = s.id;
        return;
    end if;

    select se.* into v_last
      from pgbatch.step_execution se join pgbatch.job_execution e on e.id = se.job_execution_id
     where e.instance_id = x.instance_id and se.step_name = start_step.step_name
     order by se.id desc limit 1;
    select count(*) into v_starts
      from pgbatch.step_execution se join pgbatch.job_execution e on e.id = se.job_execution_id
     where e.instance_id = x.instance_id and se.step_name = start_step.step_name;
    if v_last.id is not null and (x.fresh_from_step is null or v_index < x.fresh_from_step) then
        if v_last.status = 'ABANDONED'
           or (v_last.status = 'COMPLETED' and not coalesce((v_step ->> 'allow_start_if_complete')::boolean, false)) then
            if jsonb_array_length((select jd.definition -> 'steps' from pgbatch.job_definition jd
                                    where jd.fingerprint = x.definition_fp
                                      and jd.job_name = (select i.job_name from pgbatch.job_instance i
                                                          where i.id = x.instance_id))) = v_index + 1 then
                perform pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                              detail => jsonb_build_object('skipped', start_step.step_name));
                return query select v_last.id, 'completed'::text, null::jsonb, null::bigint;
                return;
            end if;
            return query select v_last.id, 'skip'::text, null::jsonb, null::bigint;
            return;
        end if;
        if v_last.status = 'UNKNOWN' then
            perform pgbatch._batch_finish(x.id, 'FAILED', 'STEP_UNKNOWN',
                                          format('step %s ended UNKNOWN in execution %s', v_last.step_name,
                                                 v_last.job_execution_id), 'failed');
            return query select null::bigint, 'failed'::text, null::jsonb, null::bigint;
            return;
        end if;
        if v_last.status in ('FAILED', 'STOPPED') then
            select c.context into v_ctx from pgbatch.step_execution_context c where c.step_execution_id = v_last.id;
        end if;
    end if;
    if v_step ? 'start_limit' and v_starts >= (v_step ->> 'start_limit')::bigint then
        perform pgbatch._batch_finish(x.id, 'FAILED', 'START_LIMIT_EXCEEDED',
                                      format('step %s was started %s times (start_limit %s)', start_step.step_name,
                                             v_starts, v_step ->> 'start_limit'), 'failed');
        return query select null::bigint, 'start_limit_exceeded'::text, null::jsonb, null::bigint;
        return;
    end if;

    insert into pgbatch.step_execution (job_execution_id, step_name, step_index, status, start_time, last_updated)
    values (x.id, start_step.step_name, v_index, 'STARTED', v_now, v_now)
    returning * into s;
    insert into pgbatch.step_execution_context (step_execution_id, context, chunk_seq)
    values (s.id, coalesce(v_ctx, '{}'), 0);
    update pgbatch.job_execution e
       set current_step = s.step_name, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, s.id, 'step_started', x.status, x.status, null,
                                 jsonb_build_object('step', s.step_name, 'restart_of',
                                                    case when x.fresh_from_step is null or v_index < x.fresh_from_step
                                                         then v_last.id end));
    return query select s.id, 'run'::text, coalesce(v_ctx, '{}'), 0::bigint;
end
$$;

-- ==== batch/functions/225_end_step.sql ====
-- Ends step execution `step_execution_id` (STARTED) as `status` (COMPLETED,
-- FAILED, STOPPED or UNKNOWN), by the worker holding work item `job_id` (fenced, see
-- _batch_fence), with its exit code (default: the status), message and,
-- when given, a last `context` and job `job_context`. Then, in the same
-- transaction, the job:
--   FAILED / STOPPED step   the execution ends FAILED / STOPPED
--   UNKNOWN step            T21: a writer could not tell whether its output was
--                           written; the execution is UNKNOWN (not terminal, it
--                           blocks restarts) until recover_execution()
--   COMPLETED, last step    the execution ends COMPLETED (also when a stop was
--                           requested: the work is done, T8b)
--   COMPLETED, stop asked   the execution ends STOPPED (work remains, T8)
--   COMPLETED, more steps   hand-off: the work item is acked with effects
--                           that enqueue the next step's work item; the
--                           execution is STARTING until a worker claims it
-- In every case the work item is acked here, unless `ack` is false: then the
-- caller acks it in this transaction with the returned `effects` (a worker's
-- own settler does, so it knows the job is settled). Returns (job_status,
-- next_step, next_job_id, effects). InvalidExecutionState (PB048) for a step
-- that is not STARTED; InvalidArgument (PB007) for another status.
create or replace function pgbatch.end_step(step_execution_id bigint, job_id uuid, claim_token uuid,
    status text, exit_code text default null, exit_message text default null,
    context jsonb default null, job_context jsonb default null, ack boolean default true)
returns table (job_status text, next_step text, next_job_id uuid, effects jsonb)
language plpgsql
as $$
#variable_conflict use_column
declare
    s       pgbatch.step_execution;
    x       pgbatch.job_execution;
    v_next  text;
    v_id    uuid;
    v_now   timestamptz := pgbatch.now();
    v_final text;
    v_fx    jsonb;
begin
    if end_step.status is null or end_step.status not in ('COMPLETED', 'FAILED', 'STOPPED', 'UNKNOWN') then
        perform pgbatch._raise('PB007', format('invalid argument: a step ends COMPLETED, FAILED, STOPPED or UNKNOWN, not %s',
                                               coalesce(end_step.status, 'NULL')));
    end if;
    select * into s from pgbatch.step_execution se where se.id = end_step.step_execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('step execution %s not found', end_step.step_execution_id));
    end if;
    x := pgbatch._batch_fence(s.job_execution_id, end_step.job_id, end_step.claim_token);
    select * into s from pgbatch.step_execution se where se.id = end_step.step_execution_id for update;
    if s.status <> 'STARTED' then
        perform pgbatch._raise('PB048', format('step execution %s is %s, not STARTED', s.id, s.status));
    end if;
    update pgbatch.step_execution se
       set status = end_step.status, exit_code = coalesce(end_step.exit_code, end_step.status),
           exit_message = end_step.exit_message, end_time = v_now, last_updated = v_now, version = se.version + 1
     where se.id = s.id;
    if end_step.context is not null then
        update pgbatch.step_execution_context c set context = end_step.context where c.step_execution_id = s.id;
    end if;
    if end_step.job_context is not null then
        update pgbatch.job_execution_context c set context = end_step.job_context where c.job_execution_id = x.id;
    end if;

    select d.value ->> 'name' into v_next
      from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
       and d.ord = s.step_index + 2;

    if end_step.status = 'UNKNOWN' then
        update pgbatch.job_execution e
           set status = 'UNKNOWN', exit_code = coalesce(end_step.exit_code, 'UNKNOWN'),
               exit_message = end_step.exit_message, lease_owner = null, lease_boot_id = null,
               lease_expires_at = null, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, s.id, 'unknown', x.status, 'UNKNOWN', null,
                                     jsonb_build_object('step', s.step_name, 'message', end_step.exit_message));
        v_final := 'UNKNOWN';
    elsif end_step.status in ('FAILED', 'STOPPED') then
        v_final := pgbatch._batch_finish(x.id, end_step.status, coalesce(end_step.exit_code, end_step.status),
                                         end_step.exit_message, lower(end_step.status),
                                         detail => jsonb_build_object('step', s.step_name));
    elsif v_next is null then
        v_final := pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                         detail => jsonb_build_object('step', s.step_name));
    elsif x.status = 'STOPPING' then
        v_final := pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped',
                                         detail => jsonb_build_object('step', s.step_name, 'next_step', v_next));
    end if;
    if v_final is not null then
        if end_step.ack then
            perform pgbatch.ack(end_step.job_id, end_step.claim_token);
        end if;
        return query select v_final, null::text, null::uuid, null::jsonb;
        return;
    end if;

    v_id := pgbatch.uuid_v7();
    v_fx := jsonb_build_object('enqueue', jsonb_build_array(
        jsonb_build_object('queue', x.queue, 'id', v_id,
                           'payload', jsonb_build_object('kind', 'batch_step', 'execution_id', x.id, 'step', v_next))));
    if end_step.ack then
        perform pgbatch.ack(end_step.job_id, end_step.claim_token, v_fx);
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', queue_job_id = v_id, current_step = v_next, lease_owner = null,
           lease_boot_id = null, lease_expires_at = null, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, s.id, 'step_handoff', x.status, 'STARTING', null,
                                 jsonb_build_object('step', s.step_name, 'next_step', v_next, 'job_id', v_id));
    return query select 'STARTING'::text, v_next, v_id, v_fx;
end
$$;

-- ==== batch/functions/228_handoff_execution.sql ====
-- T16, graceful shutdown with on_shutdown = 'handoff': the worker holding work
-- item `job_id` of execution `execution_id` (fenced, see _batch_fence), after
-- its last chunk commit, hands the execution back: STARTED -> STARTING,
-- handoff_count + 1, lease cleared, event `handoff`; the item is acked with
-- effects that enqueue a fresh work item for the same step, which the next
-- worker to claim it continues from the step's checkpoint (the same execution
-- and step row). A STOPPING execution ends STOPPED instead (the stop was
-- requested first). With `ack` false the caller acks the item in this
-- transaction with the returned `effects` (the worker's settler does).
-- Returns (status, next_job_id, effects).
create or replace function pgbatch.handoff_execution(execution_id bigint, job_id uuid, claim_token uuid,
    ack boolean default true)
returns table (status text, next_job_id uuid, effects jsonb)
language plpgsql
as $$
#variable_conflict use_column
declare
    x     pgbatch.job_execution;
    v_id  uuid;
    v_fx  jsonb;
    v_now timestamptz := pgbatch.now();
begin
    x := pgbatch._batch_fence(handoff_execution.execution_id, handoff_execution.job_id, handoff_execution.claim_token);
    if x.status = 'STOPPING' then
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped', null, 'STOPPED',
                                      jsonb_build_object('step', x.current_step, 'at', 'shutdown'));
        if handoff_execution.ack then
            perform pgbatch.ack(handoff_execution.job_id, handoff_execution.claim_token);
        end if;
        return query select 'STOPPED'::text, null::uuid, null::jsonb;
        return;
    end if;
    v_id := pgbatch.uuid_v7();
    v_fx := jsonb_build_object('enqueue', jsonb_build_array(
        jsonb_build_object('queue', x.queue, 'id', v_id,
                           'payload', jsonb_build_object('kind', 'batch_step', 'execution_id', x.id,
                                                         'step', x.current_step))));
    if handoff_execution.ack then
        perform pgbatch.ack(handoff_execution.job_id, handoff_execution.claim_token, v_fx);
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', queue_job_id = v_id, lease_owner = null, lease_boot_id = null,
           lease_expires_at = null, handoff_count = e.handoff_count + 1, last_updated = v_now,
           version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, null, 'handoff', x.status, 'STARTING', null,
                                 jsonb_build_object('step', x.current_step, 'job_id', handoff_execution.job_id,
                                                    'next_job_id', v_id));
    return query select 'STARTING'::text, v_id, v_fx;
end
$$;

-- ==== batch/functions/229_execution_control.sql ====
-- What the worker holding work item `job_id` of execution `execution_id`
-- (fenced, see _batch_fence) should know at a step start and between chunk
-- commits: the execution's status, whether a stop or a pause was requested (a
-- tasklet's stop_requested()), and its job parameters as {name: value}.
-- Changes nothing.
create or replace function pgbatch.execution_control(execution_id bigint, job_id uuid, claim_token uuid)
returns table (status text, stop_requested boolean, pause_requested boolean, params jsonb)
language plpgsql
as $$
#variable_conflict use_column
declare
    x pgbatch.job_execution;
begin
    x := pgbatch._batch_fence(execution_control.execution_id, execution_control.job_id, execution_control.claim_token);
    return query select x.status, x.stop_requested_at is not null, x.pause_requested_at is not null,
                        coalesce((select jsonb_object_agg(p.key, p.value -> 'value') from jsonb_each(x.params) p), '{}');
end
$$;

-- ==== batch/functions/232_batch_recover.sql ====
-- Recovers execution `execution_id` whose worker was lost (BATCH.md §7, T18,
-- T19): its lease expired, its node restarted, or its work item was reaped or
-- released and claimed again. The caller holds the lock of the execution's
-- current work item (if it is live) and of the execution. By status:
--   STOPPING  -> STOPPED; the running step STOPPED at its last checkpoint
--   PAUSING   -> PAUSED; the running step PAUSED at its last checkpoint
--   STARTED   the job's recovery policy, after the recovery limit:
--     recovery_count + 1 > max_recoveries  -> FAILED, exit RECOVERY_LIMIT
--     ResumeForward  -> STARTING, recovery_count + 1: the same execution
--                       and step row go on from the last committed chunk
--     RestartAll     -> FAILED (HOST_LOST) and a new execution whose steps
--                       all run from scratch (_batch_relaunch)
--     RestartFrom:s  -> FAILED (HOST_LOST) and a new execution from step s,
--                       or from the step that was running when it comes
--                       earlier (unfinished work is never skipped)
--     Fail           -> FAILED (HOST_LOST)
--   any other status: nothing (returned as it is)
-- `keep_item`: the caller (start_execution) holds a new claim of the current
-- work item and goes on with it (ResumeForward) or acks it; otherwise the item
-- is retired (_batch_retire_item) and ResumeForward enqueues a fresh one.
-- One event `recovered` (detail: reason, policy, new execution) per recovery.
-- Returns the execution's new status.
create or replace function pgbatch._batch_recover(execution_id bigint, reason text, keep_item boolean)
returns text
language plpgsql
as $$
declare
    x        pgbatch.job_execution;
    v_def    jsonb;
    v_max    integer;
    v_cur    integer;
    v_from   integer;
    v_new    bigint;
    v_now    timestamptz := pgbatch.now();
    v_detail jsonb;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_recover.execution_id for update;
    if not found or x.status not in ('STARTED', 'STOPPING', 'PAUSING') then
        return x.status;
    end if;
    select jd.definition into v_def from pgbatch.job_definition jd
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id);
    v_detail := jsonb_build_object('reason', _batch_recover.reason, 'policy', x.recovery_policy,
                                   'step', x.current_step, 'job_id', x.queue_job_id);
    if not _batch_recover.keep_item and x.queue_job_id is not null then
        perform pgbatch._batch_retire_item(x.queue_job_id, _batch_recover.reason);
    end if;

    if x.status = 'STOPPING' then
        return pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED',
                                     format('stopped: the worker was lost while stopping (%s)', _batch_recover.reason),
                                     'recovered', null, 'STOPPED', v_detail);
    end if;
    if x.status = 'PAUSING' then
        update pgbatch.step_execution s
           set status = 'PAUSED', last_updated = v_now, version = s.version + 1
         where s.job_execution_id = x.id and s.status = 'STARTED';
        update pgbatch.job_execution e
           set status = 'PAUSED', lease_owner = null, lease_boot_id = null, lease_expires_at = null,
               pause_reason = coalesce(e.pause_reason, 'paused: the worker was lost while pausing'),
               last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, null, 'recovered', x.status, 'PAUSED', null, v_detail);
        return 'PAUSED';
    end if;

    v_max := coalesce((v_def ->> 'max_recoveries')::integer, 5);
    if x.recovery_count + 1 > v_max then
        return pgbatch._batch_finish(x.id, 'FAILED', 'RECOVERY_LIMIT',
                                     format('the worker was lost %s times (max_recoveries %s); last: %s',
                                            x.recovery_count + 1, v_max, _batch_recover.reason),
                                     'recovered', null, 'FAILED', v_detail || '{"limit": true}');
    end if;
    if x.recovery_policy = 'ResumeForward' then
        update pgbatch.job_execution e
           set status = 'STARTING', lease_owner = null, lease_boot_id = null, lease_expires_at = null,
               recovery_count = e.recovery_count + 1, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        if not _batch_recover.keep_item then
            v_detail := v_detail || jsonb_build_object('next_job_id', pgbatch._batch_enqueue(x.id, x.current_step));
        end if;
        perform pgbatch._batch_event(x.id, null, 'recovered', x.status, 'STARTING', null, v_detail);
        return 'STARTING';
    end if;

    perform pgbatch._batch_finish(x.id, 'FAILED', 'HOST_LOST',
                                  format('the worker was lost (%s); recovery policy %s', _batch_recover.reason,
                                         x.recovery_policy),
                                  'recovered', null, 'FAILED', v_detail);
    if x.recovery_policy = 'Fail' then
        return 'FAILED';
    end if;
    select d.ord - 1 into v_cur
      from jsonb_array_elements(v_def -> 'steps') with ordinality d(value, ord)
     where d.value ->> 'name' = x.current_step;
    if x.recovery_policy = 'RestartAll' then
        v_from := 0;
    else
        select d.ord - 1 into v_from
          from jsonb_array_elements(v_def -> 'steps') with ordinality d(value, ord)
         where d.value ->> 'name' = substr(x.recovery_policy, 13);
        v_from := least(coalesce(v_from, 0), coalesce(v_cur, 0));
    end if;
    v_new := pgbatch._batch_relaunch(x, v_from, x.recovery_count + 1, _batch_recover.reason);
    update pgbatch.execution_event ev
       set detail = ev.detail || jsonb_build_object('new_execution_id', v_new)
     where ev.id = (select max(e2.id) from pgbatch.execution_event e2 where e2.job_execution_id = x.id);
    return 'FAILED';
end
$$;

-- ==== batch/functions/234_recover_execution.sql ====
-- T20 recover (BATCH.md §3, Spring Batch 6's recover): an operator settles an
-- execution whose outcome nobody will report. UNKNOWN, or STARTED / STOPPING /
-- PAUSING whose work item's lease has expired (or that has no claimed work
-- item), -> FAILED with exit RECOVERED; steps that had not ended (STARTED,
-- PAUSED, UNKNOWN) -> FAILED, so a restart runs them again (from their
-- checkpoint). The work item is retired. Returns (applied, status): applied =
-- false, changing nothing, in any other status or while a worker holds a live
-- lease. A repeated call with the same `request_id` returns the first one's
-- result. JobExecutionNotFound (PB047).
create or replace function pgbatch.recover_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x       pgbatch.job_execution;
    v_lease timestamptz;
begin
    x := pgbatch._batch_lock_operator(recover_execution.execution_id);
    if recover_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'recover', recover_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('STARTED', 'STOPPING', 'PAUSING') then
        select j.lease_expires_at into v_lease from pgbatch.job j
         where j.id = x.queue_job_id and j.state = 'claimed';
        if v_lease is not null and v_lease >= pgbatch.now() then
            return query select false, x.status;
            return;
        end if;
    elsif x.status <> 'UNKNOWN' then
        return query select false, x.status;
        return;
    end if;
    if x.queue_job_id is not null then
        perform pgbatch._batch_retire_item(x.queue_job_id, 'recovered by an operator');
    end if;
    perform pgbatch._batch_finish(x.id, 'FAILED', 'RECOVERED',
                                  coalesce(x.exit_message, format('recovered by an operator from %s', x.status)),
                                  'recover', recover_execution.request_id, 'FAILED',
                                  jsonb_build_object('from', x.status));
    return query select true, 'FAILED'::text;
end
$$;

-- ==== batch/functions/235_cancel_execution.sql ====
-- Administrative cancel (BATCH.md decision 3): ends any execution that is not
-- terminal at once, whether a worker runs it or not: -> STOPPED with exit
-- CANCELLED (a STOPPED execution, so the instance may be restarted; the exit
-- code is what reports CANCELLED). The running step ends STOPPED at its last
-- committed chunk; a worker that still runs it is fenced out at its next call
-- (its uncommitted chunk rolls back); the work item is cancelled (a claimed
-- one ends cancelled when its claim ends); PENDING approvals EXPIRED. Returns
-- (applied, status): applied = false, changing nothing, for COMPLETED,
-- FAILED, STOPPED and ABANDONED. A repeated call with the same `request_id`
-- returns the first one's result. JobExecutionNotFound (PB047).
create or replace function pgbatch.cancel_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x pgbatch.job_execution;
begin
    x := pgbatch._batch_lock_operator(cancel_execution.execution_id);
    if cancel_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'cancel', cancel_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED') then
        return query select false, x.status;
        return;
    end if;
    if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
        perform pgbatch.cancel_job(x.queue_job_id);
    end if;
    perform pgbatch._batch_finish(x.id, 'STOPPED', 'CANCELLED', 'cancelled by an operator', 'cancel',
                                  cancel_execution.request_id, 'STOPPED', jsonb_build_object('from', x.status));
    return query select true, 'STOPPED'::text;
end
$$;

-- ==== batch/functions/237_recover_executions.sql ====
-- The batch recovery sweep (BATCH.md §7), run by every worker node's
-- maintenance loop (and at its start): recovers up to `limit` running
-- executions (STARTED, STOPPING, PAUSING; STARTING without a live work item)
-- whose worker is gone, judged by
-- their current work item in database time:
--   claimed, lease expired more than `grace` ago   the worker died or hangs
--   pending                                         its claim was reaped, released
--                                                   at shutdown, or ended by its
--                                                   node's restart (register_node:
--                                                   the fast path, no lease wait)
--   not live any more (dead, cancelled)             stranded
-- Each is locked item first, then execution, with SKIP LOCKED, and checked
-- again under the locks, so many nodes sweeping at once recover each execution
-- exactly once. The first two cases apply _batch_recover (the job's policy,
-- the recovery limit; the old item is retired, so a zombie holding it is
-- fenced out). A stranded STARTING or STARTED execution (its work item was
-- nacked or dead-lettered to its attempt limit, e.g. by workers that do not
-- know its definition) ends FAILED with exit WORK_ITEM_DEAD
-- and the item's last error; a stranded STOPPING / PAUSING one ends STOPPED /
-- PAUSED. Returns the number of executions recovered. `grace`: 0 seconds to
-- 1 day, `limit` at least 1 (InvalidArgument, PB007).
create or replace function pgbatch.recover_executions(grace interval default '0 seconds', "limit" integer default 100)
returns integer
language plpgsql
as $$
declare
    v       record;
    x       pgbatch.job_execution;
    j       pgbatch.job;
    v_n     integer := 0;
    v_error jsonb;
    v_state text;
begin
    if recover_executions.grace is null or not (recover_executions.grace between interval '0' and interval '1 day') then
        perform pgbatch._raise('PB007', 'invalid grace: must be an interval from 0 seconds to 1 day');
    end if;
    if recover_executions."limit" is null or recover_executions."limit" < 1 then
        perform pgbatch._raise('PB007', 'invalid limit: must be at least 1');
    end if;
    for v in
        select e.id, e.queue_job_id from pgbatch.job_execution e
         where (e.status in ('STARTED', 'STOPPING', 'PAUSING')
                and not exists (select 1 from pgbatch.job q
                                 where q.id = e.queue_job_id and q.state = 'claimed'
                                   and q.lease_expires_at >= pgbatch.now() - recover_executions.grace))
            or (e.status = 'STARTING' and not exists (select 1 from pgbatch.job q where q.id = e.queue_job_id))
         order by e.lease_expires_at nulls first, e.id
         limit recover_executions."limit"
    loop
        j := null;
        select * into j from pgbatch.job q where q.id = v.queue_job_id for update skip locked;
        if not found and exists (select 1 from pgbatch.job q where q.id = v.queue_job_id) then
            continue;  -- a worker or another sweeper holds its item
        end if;
        select * into x from pgbatch.job_execution e where e.id = v.id for update skip locked;
        if not found or x.status not in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING')
           or x.queue_job_id is distinct from v.queue_job_id or (x.status = 'STARTING' and j.id is not null) then
            continue;
        end if;
        if j.id is not null then
            if j.state = 'claimed' and j.lease_expires_at >= pgbatch.now() - recover_executions.grace then
                continue;
            end if;
            perform pgbatch._batch_recover(x.id, case when j.state = 'pending'
                                                      then 'its work item was given back (reaped, released or its node restarted)'
                                                      else 'the lease of its work item expired' end, false);
        elsif x.status in ('STARTING', 'STARTED') then
            select a.state, a.last_error into v_state, v_error from pgbatch.job_archive a where a.id = x.queue_job_id;
            perform pgbatch._batch_finish(x.id, 'FAILED', 'WORK_ITEM_DEAD',
                                          format('its work item %s ended %s: %s', x.queue_job_id,
                                                 coalesce(v_state, 'missing'),
                                                 coalesce(v_error ->> 'message', v_error::text, 'no error recorded')),
                                          'recovered', null, 'FAILED',
                                          jsonb_build_object('reason', 'work item ' || coalesce(v_state, 'missing'),
                                                             'job_id', x.queue_job_id));
        else
            perform pgbatch._batch_recover(x.id, 'its work item is gone', false);
        end if;
        v_n := v_n + 1;
    end loop;
    return v_n;
end
$$;

-- ==== batch/privileges/030_batch_access.sql ====
-- Who may execute the public functions of sql/batch (docs/roles.md):
-- producers compute keys and launch batch jobs; workers register
-- definitions and run steps; admins make every operator call.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('canonical_params',   'producer', false),
    ('job_key',            'producer', false),
    ('next_instance',      'producer', true),
    ('launch_job',         'producer', true),
    ('register_job',       'worker',   true),
    ('start_execution',    'worker',   true),
    ('start_step',         'worker',   true),
    ('commit_chunk',       'worker',   true),
    ('end_step',           'worker',   true),
    ('handoff_execution',  'worker',   true),
    ('execution_control',  'worker',   true),
    ('recover_executions', 'worker',   true),
    ('restart_execution',  'admin',    true),
    ('stop_execution',     'admin',    true),
    ('abandon_execution',  'admin',    true),
    ('recover_execution',  'admin',    true),
    ('cancel_execution',   'admin',    true),
    ('job_executions',     'admin',    true),
    ('step_executions',    'admin',    true),
    ('execution_events',   'admin',    true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
