-- T1 (BATCH.md §3, §6): launches job `job_name` with `params` (see
-- _batch_param: a plain JSON value is an identifying parameter; an object
-- {"value", "type", "identifying"} spells type and flag out) and returns the
-- new execution's id. In one transaction: finds or creates the job instance
-- (job_name, job_key(params)), locks it, applies the restart rules, inserts
-- the execution (STARTING, the job context copied from the last execution),
-- the event `launched`, and the first work item on the job's batch queue.
-- Refusals change nothing:
--   JobNotRegistered (PB042)                 no worker registered the job
--   InvalidJobParameters (PB040)             bad parameters
--   JobExecutionAlreadyRunningError (PB044)  an execution is STARTING, STARTED,
--                                            STOPPING, PAUSING, PAUSED or AWAITING_APPROVAL
--   JobRestartError (PB045)                  detail = the reason: unknown (an UNKNOWN
--                                            execution: recover_execution() first),
--                                            abandoned, not_restartable
--   JobInstanceAlreadyCompleteError (PB043)  the last execution COMPLETED
-- With `request_id`, a repeated call for the same instance returns the
-- execution the first call created.
create or replace function pgbatch.launch_job(job_name text, params jsonb default '{}', request_id text default null)
returns bigint
language plpgsql
as $$
#variable_conflict use_column
declare
    v_def   pgbatch.job_definition;
    v_p     record;
    v_key   text;
    v_inst  bigint;
    v_last  pgbatch.job_execution;
    v_exec  bigint;
    v_ctx   jsonb := '{}';
    v_first text;
    v_now   timestamptz := pgbatch.now();
begin
    select * into v_def from pgbatch.job_definition d
     where d.job_name = launch_job.job_name
     order by d.last_registered_at desc, d.fingerprint
     limit 1;
    if not found then
        perform pgbatch._raise('PB042', format('job %s is not registered', to_json(launch_job.job_name)),
                               'a worker registers the jobs it can run (register_job) when it starts');
    end if;
    v_p := pgbatch._batch_params(launch_job.params);
    v_key := encode(sha256(convert_to(v_p.identifying_text, 'UTF8')), 'hex');

    insert into pgbatch.job_instance (job_name, job_key, identifying_params, created_at)
    values (launch_job.job_name, v_key, v_p.identifying_text::jsonb, v_now)
    on conflict on constraint job_instance_job_name_job_key_key do nothing;
    select i.id into v_inst from pgbatch.job_instance i
     where i.job_name = launch_job.job_name and i.job_key = v_key
       for update;

    if launch_job.request_id is not null then
        select e.job_execution_id into v_exec
          from pgbatch.execution_event e join pgbatch.job_execution x on x.id = e.job_execution_id
         where e.request_id = launch_job.request_id and e.kind = 'launched' and x.instance_id = v_inst
         limit 1;
        if found then
            return v_exec;
        end if;
    end if;

    select * into v_last from pgbatch.job_execution x where x.instance_id = v_inst order by x.id desc limit 1;
    if found then
        if v_last.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING') then
            perform pgbatch._raise('PB044', format('job instance %s of %s already has a running execution %s (%s)',
                                                   v_inst, to_json(launch_job.job_name), v_last.id, v_last.status));
        elsif v_last.status in ('PAUSED', 'AWAITING_APPROVAL') then
            perform pgbatch._raise('PB044', format('job instance %s of %s already has an execution %s that is %s',
                                                   v_inst, to_json(launch_job.job_name), v_last.id, v_last.status),
                                   case v_last.status when 'PAUSED' then 'use resume_execution()'
                                                      else 'use approve_gate() or reject_gate()' end);
        elsif v_last.status = 'UNKNOWN' then
            perform pgbatch._raise('PB045', format('job instance %s of %s cannot be restarted: execution %s is UNKNOWN; '
                                                   'recover_execution() first', v_inst, to_json(launch_job.job_name), v_last.id),
                                   'unknown');
        elsif v_last.status = 'COMPLETED' then
            perform pgbatch._raise('PB043', format('job instance %s of %s is already complete (execution %s)',
                                                   v_inst, to_json(launch_job.job_name), v_last.id),
                                   'change an identifying parameter to run it again (next_instance)');
        elsif v_last.status = 'ABANDONED' then
            perform pgbatch._raise('PB045', format('job instance %s of %s cannot be restarted: execution %s was abandoned',
                                                   v_inst, to_json(launch_job.job_name), v_last.id),
                                   'abandoned');
        elsif not coalesce((v_def.definition ->> 'restartable')::boolean, true) then
            perform pgbatch._raise('PB045', format('job instance %s of %s cannot be restarted: the job is not restartable',
                                                   v_inst, to_json(launch_job.job_name)),
                                   'not_restartable');
        end if;
        select c.context into v_ctx from pgbatch.job_execution_context c where c.job_execution_id = v_last.id;
    end if;

    v_first := v_def.definition -> 'steps' -> 0 ->> 'name';
    insert into pgbatch.job_execution
        (instance_id, status, params, definition_fp, recovery_policy, queue, current_step, create_time, last_updated)
    values (v_inst, 'STARTING', v_p.all_params, v_def.fingerprint, v_def.definition ->> 'recovery_policy',
            coalesce(v_def.definition ->> 'queue', 'batch'), v_first, v_now, v_now)
    returning id into v_exec;
    insert into pgbatch.job_execution_context (job_execution_id, context) values (v_exec, coalesce(v_ctx, '{}'));
    perform pgbatch._batch_event(v_exec, null, 'launched', null, 'STARTING', launch_job.request_id,
                                 case when v_last.id is not null then jsonb_build_object('restart_of', v_last.id) end);
    perform pgbatch._batch_enqueue(v_exec, v_first);
    return v_exec;
end
$$;
