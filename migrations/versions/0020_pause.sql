-- pgbatch migration 0020_pause: pause from processing logic and resume of
-- the same execution (docs/batch-pause.md): park_execution (the worker's
-- fenced pause: ctx.request_pause(), PauseJob, an operator's pause seen at a
-- boundary, on_shutdown = 'pause'), pause_execution, resume_execution, the
-- timed-resume sweep resume_due_executions, the NOTIFY of parked executions
-- (_batch_notify_parked, also sent by _batch_recover for PAUSING ->
-- PAUSED), InvalidResumeAt (PB050), and register_job accepting
-- on_shutdown = 'pause'.
-- FROZEN: never edit this file after release; 0020_pause.py pins its sha256.

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
--                    execution back, STARTING), stop (STOPPED) or pause
--                    (PAUSED until resume_execution)
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
    if v_def ? 'on_shutdown' and coalesce(v_def ->> 'on_shutdown', '') not in ('handoff', 'stop', 'pause') then
        perform pgbatch._raise('PB041', 'invalid job definition: "on_shutdown" must be handoff, stop or pause');
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

-- ==== batch/functions/232_batch_recover.sql ====
-- Recovers execution `execution_id` whose worker was lost (BATCH.md §7, T18,
-- T19): its lease expired, its node restarted, or its work item was reaped or
-- released and claimed again. The caller holds the lock of the execution's
-- current work item (if it is live) and of the execution. By status:
--   STOPPING  -> STOPPED; the running step STOPPED at its last checkpoint
--   PAUSING   -> PAUSED; the running step PAUSED at its last checkpoint
--               (pgbatch_batch_parked is notified)
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
        perform pgbatch._batch_notify_parked(x.id);
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

-- ==== batch/functions/250_batch_notify_parked.sql ====
-- Notifies channel pgbatch_batch_parked that execution `execution_id` parked
-- (PAUSED or AWAITING_APPROVAL), in the parking transaction (the
-- notification is delivered when it commits). The payload is the JSON object
-- pgbatch.batch.parking.parse_parked reads: execution_id, job_name, status,
-- step (the step it parked in), reason (the pause reason), gate (the gate's
-- name when AWAITING_APPROVAL, else null) and resume_at (ISO 8601 or null).
create or replace function pgbatch._batch_notify_parked(execution_id bigint)
returns void
language plpgsql
as $$
declare
    x pgbatch.job_execution;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_notify_parked.execution_id;
    if not found then
        return;
    end if;
    perform pg_notify('pgbatch_batch_parked', jsonb_build_object(
        'execution_id', x.id,
        'job_name', (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
        'status', x.status,
        'step', x.current_step,
        'reason', case when x.status = 'PAUSED' then x.pause_reason end,
        'gate', case when x.status = 'AWAITING_APPROVAL' then x.current_step end,
        'resume_at', case when x.status = 'PAUSED' then x.resume_at end)::text);
end
$$;

-- ==== batch/functions/251_batch_check_resume_at.sql ====
-- Refuses a `resume_at` (the time a timed pause resumes by itself) that is
-- infinite, not after pgbatch.now(), or further ahead than limits()
-- max_run_at_offset_seconds: InvalidResumeAt (PB050). NULL (no timed resume)
-- passes.
create or replace function pgbatch._batch_check_resume_at(resume_at timestamptz)
returns void
language plpgsql
stable
as $$
declare
    v_now timestamptz := pgbatch.now();
begin
    if _batch_check_resume_at.resume_at is null then
        return;
    end if;
    if not isfinite(_batch_check_resume_at.resume_at) then
        perform pgbatch._raise('PB050', format('invalid resume_at: %s, must be a finite time',
                                               _batch_check_resume_at.resume_at));
    end if;
    if _batch_check_resume_at.resume_at <= v_now then
        perform pgbatch._raise('PB050', format('invalid resume_at: %s is not after now (%s)',
                                               _batch_check_resume_at.resume_at, v_now),
                               'a timed pause resumes in the future; resume_execution() resumes now');
    end if;
    if _batch_check_resume_at.resume_at > v_now + pgbatch._limit_interval('max_run_at_offset_seconds') then
        perform pgbatch._raise('PB050', format('invalid resume_at: %s is more than %s from now (%s)',
                                               _batch_check_resume_at.resume_at,
                                               justify_hours(pgbatch._limit_interval('max_run_at_offset_seconds')),
                                               v_now));
    end if;
end
$$;

-- ==== batch/functions/252_batch_park.sql ====
-- Parks execution `execution_id` (its row locked by the caller) PAUSED
-- (T9, T10, T11, a worker's shutdown with on_shutdown = 'pause'): the step
-- that runs (STARTED) is PAUSED at its last committed checkpoint, the lease
-- is cleared, pause_reason and resume_at are set, one event `paused`
-- (from_status the execution's status, detail: step, reason, resume_at and
-- `detail`), and pgbatch_batch_parked is notified. The work item is the
-- caller's business (acked without follow-up by the worker, cancelled by the
-- operator). Returns 'PAUSED'.
create or replace function pgbatch._batch_park(execution_id bigint, reason text, resume_at timestamptz,
    request_id text default null, detail jsonb default null)
returns text
language plpgsql
as $$
declare
    x     pgbatch.job_execution;
    v_now timestamptz := pgbatch.now();
    v_id  bigint;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_park.execution_id;
    update pgbatch.step_execution s
       set status = 'PAUSED', last_updated = v_now, version = s.version + 1
     where s.job_execution_id = x.id and s.status = 'STARTED'
    returning s.id into v_id;
    update pgbatch.job_execution e
       set status = 'PAUSED', pause_reason = _batch_park.reason, resume_at = _batch_park.resume_at,
           lease_owner = null, lease_boot_id = null, lease_expires_at = null,
           last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, v_id, 'paused', x.status, 'PAUSED', _batch_park.request_id,
                                 jsonb_build_object('step', x.current_step, 'reason', _batch_park.reason,
                                                    'resume_at', _batch_park.resume_at)
                                 || coalesce(_batch_park.detail, '{}'));
    perform pgbatch._batch_notify_parked(x.id);
    return 'PAUSED';
end
$$;

-- ==== batch/functions/253_park_execution.sql ====
-- T9 / T10 / shutdown pause, by the worker holding work item `job_id` of
-- execution `execution_id` (fenced, see _batch_fence): the execution parks
-- PAUSED at the step's last committed checkpoint (_batch_park: step PAUSED,
-- lease cleared, `reason`, optional `resume_at`, event `paused` with detail
-- `source` (logic, exception, operator, shutdown), NOTIFY). Called in the
-- chunk's own transaction after commit_chunk (ctx.request_pause(): the
-- checkpoint and the pause are one commit), or in a transaction of its own
-- (raise PauseJob: the chunk was rolled back; an operator's pause read back at
-- a chunk commit or a step start; a worker's shutdown). `step_done`: the step
-- that runs has finished its work (a tasklet that called request_pause()):
-- it ends COMPLETED and the execution parks before the next step (at the last
-- step the execution is COMPLETED instead: nothing is left to pause). A
-- STOPPING execution ends STOPPED instead (the stop was asked first). The
-- work item is acked without follow-up (nothing runs until a resume), here
-- or, with `ack` false, by the caller in this transaction. Returns (status,
-- step, pause_reason, resumes_at): the status reached (PAUSED; STOPPED or
-- COMPLETED as above), the step it parked at, and the stored pause. InvalidResumeAt (PB050) for a `resume_at` that is
-- infinite or not in the future, changing nothing.
create or replace function pgbatch.park_execution(execution_id bigint, job_id uuid, claim_token uuid,
    reason text default null, resume_at timestamptz default null, source text default 'logic',
    step_done boolean default false, ack boolean default true)
returns table (status text, step text, pause_reason text, resumes_at timestamptz)
language plpgsql
as $$
#variable_conflict use_column
declare
    x      pgbatch.job_execution;
    s      pgbatch.step_execution;
    v_next text;
    v_now  timestamptz := pgbatch.now();
    v_fin  text;
    v_why  text;
    v_at   timestamptz;
begin
    x := pgbatch._batch_fence(park_execution.execution_id, park_execution.job_id, park_execution.claim_token);
    perform pgbatch._batch_check_resume_at(park_execution.resume_at);
    if park_execution.source is null or park_execution.source not in ('logic', 'exception', 'operator', 'shutdown') then
        perform pgbatch._raise('PB007', format('invalid argument: source must be logic, exception, operator or shutdown, not %s',
                                               coalesce(park_execution.source, 'NULL')));
    end if;
    if park_execution.reason is not null and length(park_execution.reason) > 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: a pause reason is at most 10000 characters');
    end if;
    -- an operator's pause keeps the reason and resume_at it was asked with
    v_why := coalesce(park_execution.reason, x.pause_reason,
                      case park_execution.source when 'shutdown' then 'paused at the worker''s shutdown' end);
    v_at := coalesce(park_execution.resume_at, x.resume_at);
    if x.status = 'STOPPING' then
        v_fin := pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped', null, 'STOPPED',
                                       jsonb_build_object('step', x.current_step, 'at', 'pause'));
    elsif park_execution.step_done then
        select * into s from pgbatch.step_execution se
         where se.job_execution_id = x.id and se.step_name = x.current_step and se.status = 'STARTED' for update;
        if not found then
            perform pgbatch._raise('PB048', format('job execution %s has no running step %s', x.id, to_json(x.current_step)));
        end if;
        update pgbatch.step_execution se
           set status = 'COMPLETED', exit_code = 'COMPLETED', end_time = v_now, last_updated = v_now,
               version = se.version + 1
         where se.id = s.id;
        select d.value ->> 'name' into v_next
          from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
         where jd.fingerprint = x.definition_fp
           and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
           and d.ord = s.step_index + 2;
        if v_next is null then
            v_fin := pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                           detail => jsonb_build_object('step', s.step_name, 'pause', v_why));
        else
            update pgbatch.job_execution e set current_step = v_next where e.id = x.id;
            v_fin := pgbatch._batch_park(x.id, v_why, v_at, null,
                                         jsonb_build_object('source', park_execution.source, 'after_step', s.step_name));
        end if;
    else
        v_fin := pgbatch._batch_park(x.id, v_why, v_at, null,
                                     jsonb_build_object('source', park_execution.source));
    end if;
    if park_execution.ack then
        perform pgbatch.ack(park_execution.job_id, park_execution.claim_token);
    end if;
    select * into x from pgbatch.job_execution e where e.id = x.id;
    return query select v_fin, x.current_step,
                        case when v_fin = 'PAUSED' then x.pause_reason end,
                        case when v_fin = 'PAUSED' then x.resume_at end;
end
$$;

-- ==== batch/functions/254_pause_execution.sql ====
-- T10 / T11 operator pause (BATCH.md §3, §4.3). STARTED -> PAUSING
-- (pause_requested_at set, event `pause`; the worker parks at its next chunk
-- commit or step start: PAUSED at that checkpoint, event `paused`);
-- STARTING -> PAUSED at once (T11: the waiting work item is cancelled, so no
-- worker runs it; event `paused`). `reason` (default 'paused by an operator')
-- and `resume_at` (a timed pause: the resume sweep resumes it then) are kept
-- for the parked execution. Returns (applied, status): applied = false,
-- changing nothing, in any other status (PAUSING, PAUSED, STOPPING, ended,
-- ...). A repeated call with the same `request_id` returns the first one's
-- result. JobExecutionNotFound (PB047); InvalidResumeAt (PB050) for a
-- `resume_at` that is infinite or not in the future.
create or replace function pgbatch.pause_execution(execution_id bigint, request_id text default null,
    reason text default null, resume_at timestamptz default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x     pgbatch.job_execution;
    v_now timestamptz := pgbatch.now();
    v_why text := coalesce(pause_execution.reason, 'paused by an operator');
begin
    x := pgbatch._batch_lock_operator(pause_execution.execution_id);
    if pause_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'pause', pause_execution.request_id)
                     union all
                     select * from pgbatch._batch_prior_result(x.id, 'paused', pause_execution.request_id);
        if found then
            return;
        end if;
    end if;
    perform pgbatch._batch_check_resume_at(pause_execution.resume_at);
    if length(v_why) > 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: a pause reason is at most 10000 characters');
    end if;
    if x.status = 'STARTED' then
        update pgbatch.job_execution e
           set status = 'PAUSING', pause_requested_at = v_now, pause_reason = v_why,
               resume_at = pause_execution.resume_at, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, null, 'pause', x.status, 'PAUSING', pause_execution.request_id,
                                     jsonb_build_object('reason', v_why, 'resume_at', pause_execution.resume_at));
        return query select true, 'PAUSING'::text;
    elsif x.status = 'STARTING' then
        if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
            perform pgbatch.cancel_job(x.queue_job_id);
        end if;
        update pgbatch.job_execution e set pause_requested_at = v_now where e.id = x.id;
        perform pgbatch._batch_park(x.id, v_why, pause_execution.resume_at, pause_execution.request_id,
                                    jsonb_build_object('source', 'operator', 'job_id', x.queue_job_id));
        return query select true, 'PAUSED'::text;
    else
        return query select false, x.status;
    end if;
end
$$;

-- ==== batch/functions/255_batch_resume.sql ====
-- T12, shared by resume_execution and the timed-resume sweep: execution
-- `execution_id` (its row locked by the caller) PAUSED -> STARTING,
-- resume_count + 1, pause_reason, resume_at and pause_requested_at cleared,
-- a fresh work item for its current step (the next claim reopens the same
-- step row from its checkpoint: nothing else is inserted), one event
-- `resumed` (request_id, detail: step, work item, actor kind `by`). When the
-- job's definition registered last has another fingerprint than the
-- execution's: JobDefinitionChangedError (PB049) unless
-- `allow_definition_change`; then the execution goes on with that definition,
-- its step rows matched by name (their step_index follows the new order), and
-- ends FAILED (exit STEP_MISSING, in the same `resumed` event's transaction)
-- when its current step is not in it. Returns (applied, status); (false,
-- status) when the execution is not PAUSED.
create or replace function pgbatch._batch_resume(execution_id bigint, request_id text,
    allow_definition_change boolean, by_whom text)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x       pgbatch.job_execution;
    v_def   pgbatch.job_definition;
    v_name  text;
    v_now   timestamptz := pgbatch.now();
    v_id    uuid;
    v_moved boolean := false;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_resume.execution_id;
    if x.status is distinct from 'PAUSED' then
        return query select false, x.status;
        return;
    end if;
    v_name := (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id);
    select * into v_def from pgbatch.job_definition d
     where d.job_name = v_name order by d.last_registered_at desc, d.fingerprint limit 1;
    if found and v_def.fingerprint <> x.definition_fp then
        if not coalesce(_batch_resume.allow_definition_change, false) then
            perform pgbatch._raise('PB049', format('job execution %s of %s was paused with definition %s; the job''s '
                                                   'definition is now %s', x.id, to_json(v_name), x.definition_fp,
                                                   v_def.fingerprint),
                                   'resume with allow_definition_change => true to go on with the new definition '
                                   '(steps matched by name)');
        end if;
        v_moved := true;
        update pgbatch.step_execution s
           set step_index = d.ord - 1, last_updated = v_now, version = s.version + 1
          from jsonb_array_elements(v_def.definition -> 'steps') with ordinality d(value, ord)
         where s.job_execution_id = x.id and d.value ->> 'name' = s.step_name and s.step_index <> d.ord - 1;
        update pgbatch.job_execution e set definition_fp = v_def.fingerprint where e.id = x.id;
        if not exists (select 1 from jsonb_array_elements(v_def.definition -> 'steps') d(value)
                        where d.value ->> 'name' = x.current_step) then
            perform pgbatch._batch_finish(x.id, 'FAILED', 'STEP_MISSING',
                                          format('step %s is not in the job''s new definition %s', to_json(x.current_step),
                                                 v_def.fingerprint),
                                          'resumed', _batch_resume.request_id, 'FAILED',
                                          jsonb_build_object('step', x.current_step, 'by', _batch_resume.by_whom,
                                                             'definition_fp', v_def.fingerprint,
                                                             'previous_definition_fp', x.definition_fp));
            return query select true, 'FAILED'::text;
            return;
        end if;
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', resume_count = e.resume_count + 1, resume_at = null, pause_reason = null,
           pause_requested_at = null, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    v_id := pgbatch._batch_enqueue(x.id, x.current_step);
    perform pgbatch._batch_event(x.id, null, 'resumed', 'PAUSED', 'STARTING', _batch_resume.request_id,
                                 jsonb_build_object('step', x.current_step, 'job_id', v_id, 'by', _batch_resume.by_whom,
                                                    'reason', x.pause_reason)
                                 || case when v_moved then jsonb_build_object('definition_fp', v_def.fingerprint,
                                                                              'previous_definition_fp', x.definition_fp)
                                         else '{}' end);
    return query select true, 'STARTING'::text;
end
$$;

-- ==== batch/functions/256_resume_execution.sql ====
-- T12 resume (BATCH.md §3, §4.3): a PAUSED execution -> STARTING; the same
-- execution and the same step row continue from the step's checkpoint
-- (_batch_resume: resume_count + 1, a fresh work item, event `resumed`).
-- Returns (applied, status): applied = false, changing nothing, when the
-- execution is not PAUSED (e.g. STARTING or STARTED after another resume won
-- the race, STOPPED after a stop did). A repeated call with the same
-- `request_id` returns the first one's result and writes no event.
-- JobExecutionNotFound (PB047); JobDefinitionChangedError (PB049) when the
-- job's definition changed while it was paused, unless
-- `allow_definition_change` (then the steps are matched by name; a current
-- step the new definition lacks ends it FAILED, exit STEP_MISSING).
create or replace function pgbatch.resume_execution(execution_id bigint, request_id text default null,
    allow_definition_change boolean default false)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x pgbatch.job_execution;
begin
    x := pgbatch._batch_lock_operator(resume_execution.execution_id);
    if resume_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'resumed', resume_execution.request_id);
        if found then
            return;
        end if;
    end if;
    return query select * from pgbatch._batch_resume(x.id, resume_execution.request_id,
                                                     resume_execution.allow_definition_change, 'operator');
end
$$;

-- ==== batch/functions/257_resume_due_executions.sql ====
-- The timed-resume sweep (BATCH.md §3 T12, §7): resumes up to `batch_size`
-- PAUSED executions whose resume_at has come (resume_at <= pgbatch.now()),
-- oldest first, each with _batch_resume (event `resumed`, detail by
-- 'schedule'). The rows are taken FOR UPDATE SKIP LOCKED and checked again
-- under the lock, so many nodes sweeping at once resume each execution
-- exactly once. An execution whose job definition changed while it was
-- paused is left PAUSED for an operator (resume_execution with
-- allow_definition_change). Returns the number resumed. `batch_size`: 1 to
-- 10000 (InvalidArgument, PB007).
create or replace function pgbatch.resume_due_executions(batch_size integer default 100)
returns integer
language plpgsql
as $$
declare
    v   record;
    r   record;
    v_n integer := 0;
begin
    if resume_due_executions.batch_size is null or resume_due_executions.batch_size not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid batch_size: must be 1 to 10000');
    end if;
    for v in
        select e.id from pgbatch.job_execution e
         where e.status = 'PAUSED' and e.resume_at is not null and e.resume_at <= pgbatch.now()
           and e.definition_fp = (select d.fingerprint from pgbatch.job_definition d
                                   where d.job_name = (select i.job_name from pgbatch.job_instance i
                                                        where i.id = e.instance_id)
                                   order by d.last_registered_at desc, d.fingerprint limit 1)
         order by e.resume_at, e.id
         limit resume_due_executions.batch_size
         for update of e skip locked
    loop
        select * into r from pgbatch._batch_resume(v.id, null, false, 'schedule');
        if r.applied then
            v_n := v_n + 1;
        end if;
    end loop;
    return v_n;
end
$$;

-- ==== batch/functions/258_paused_executions.sql ====
-- History for operators: the PAUSED executions of job `job_name` (every job
-- when NULL), newest first, at most `limit` (1 to 10000, else
-- InvalidArgument, PB007), with what they wait for: the step they parked in,
-- the pause reason, resume_at (a timed pause; NULL: until resume_execution),
-- when they parked (their last `paused` or `recovered` event) and how often
-- they were resumed before.
create or replace function pgbatch.paused_executions(job_name text default null, "limit" integer default 100)
returns table (execution_id bigint, job text, current_step text, pause_reason text, resume_at timestamptz,
               paused_at timestamptz, resume_count integer)
language plpgsql
stable
as $$
begin
    if paused_executions."limit" is null or paused_executions."limit" not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: limit must be 1 to 10000');
    end if;
    return query
    select x.id, i.job_name, x.current_step, x.pause_reason, x.resume_at,
           (select max(ev.at) from pgbatch.execution_event ev
             where ev.job_execution_id = x.id and ev.to_status = 'PAUSED'),
           x.resume_count
      from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id
     where x.status = 'PAUSED'
       and (paused_executions.job_name is null or i.job_name = paused_executions.job_name)
     order by x.id desc
     limit paused_executions."limit";
end
$$;

-- ==== batch/privileges/040_pause_access.sql ====
-- Who may execute the pause and resume functions (docs/roles.md,
-- docs/batch-pause.md): workers park the executions they run and sweep timed
-- resumes; admins pause and resume.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('park_execution',        'worker', true),
    ('resume_due_executions', 'worker', true),
    ('pause_execution',       'admin',  true),
    ('resume_execution',      'admin',  true),
    ('paused_executions',     'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
