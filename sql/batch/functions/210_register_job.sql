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
