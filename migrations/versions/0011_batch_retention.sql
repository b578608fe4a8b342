-- pgbatch migration 0011_batch_retention: retention of batch history
-- (purge_batch_history: terminal executions older than an age, with their
-- steps, contexts and events, and the instances they leave empty; the
-- maintenance leader calls it) and get_execution (one execution with its
-- summed step counters, for operators). New functions only.
-- FROZEN: never edit this file after release; 0011_batch_retention.py pins its sha256.

-- ==== batch/functions/280_purge_batch_history.sql ====
-- Retention of batch history (BATCH.md decision 5): deletes up to
-- `batch_size` terminal executions (COMPLETED, FAILED, STOPPED, ABANDONED)
-- that ended more than `older_than` ago (database time), with their step
-- executions, contexts, approvals and events (on delete cascade), and then
-- the job instances they leave without any execution. An execution whose
-- instance has an active execution is kept: a restart in progress reads the
-- step history of the executions before it (restart from checkpoint, start
-- limits). Returns the number of executions deleted; call it again while it
-- returns `batch_size`. Safe on many nodes at once (FOR UPDATE SKIP
-- LOCKED). `older_than` is 0 to limits() max_retention_seconds and
-- `batch_size` 1 to 100000 (InvalidArgument, PB007).
create or replace function pgbatch.purge_batch_history(older_than interval default '30 days',
                                                       batch_size integer default 1000)
returns integer
language plpgsql
as $$
declare
    v_now timestamptz := pgbatch.now();
    v_n         integer;
    v_instances bigint[];
begin
    if purge_batch_history.batch_size is null or purge_batch_history.batch_size not between 1 and 100000 then
        perform pgbatch._raise('PB007', 'invalid batch_size: must be 1 to 100000');
    end if;
    if purge_batch_history.older_than is null or purge_batch_history.older_than < interval '0'
       or purge_batch_history.older_than > pgbatch._limit_interval('max_retention_seconds') then
        perform pgbatch._raise('PB007', format('invalid older_than: must be a non-negative interval of at most %s',
                                               justify_hours(pgbatch._limit_interval('max_retention_seconds'))));
    end if;
    perform pgbatch._relax_commit();
    with victims as (
        select x.id from pgbatch.job_execution x
         where x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')
           and x.end_time < v_now - purge_batch_history.older_than
           and not exists (select 1 from pgbatch.job_execution a
                            where a.instance_id = x.instance_id
                              and a.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED',
                                               'AWAITING_APPROVAL', 'UNKNOWN'))
         order by x.end_time, x.id
         limit purge_batch_history.batch_size
           for update skip locked
    ), gone as (
        delete from pgbatch.job_execution x using victims v where x.id = v.id
        returning x.instance_id
    )
    select count(*)::integer, coalesce(array_agg(distinct g.instance_id), '{}') into v_n, v_instances
      from gone g;
    -- a new statement sees the deletions: drop the instances left without an
    -- execution, skipping one a launch holds right now
    delete from pgbatch.job_instance i
     where i.id in (select l.id from pgbatch.job_instance l where l.id = any (v_instances)
                       for update skip locked)
       and not exists (select 1 from pgbatch.job_execution x where x.instance_id = i.id);
    return v_n;
end
$$;

-- ==== batch/functions/281_batch_known_execution.sql ====
-- `execution_id` when a job execution has that id, else JobExecutionNotFound
-- (PB047).
create or replace function pgbatch._batch_known_execution(execution_id bigint)
returns bigint
language plpgsql
stable
as $$
begin
    perform 1 from pgbatch.job_execution x where x.id = _batch_known_execution.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', _batch_known_execution.execution_id));
    end if;
    return _batch_known_execution.execution_id;
end
$$;

-- ==== batch/functions/282_get_execution.sql ====
-- History: one execution by id, with the columns of job_executions() and
-- what an operator looks at to decide what to do with it (its recovery
-- policy, definition, lease, stop request), and the counters summed over its
-- step executions. JobExecutionNotFound (PB047) for an unknown id.
create or replace function pgbatch.get_execution(execution_id bigint)
returns table (execution_id bigint, instance_id bigint, job text, job_key text, execution_status text,
               exit_code text, exit_message text, current_step text, params jsonb,
               create_time timestamptz, start_time timestamptz, end_time timestamptz,
               resume_count integer, recovery_count integer, handoff_count integer,
               recovery_policy text, definition_fp text, lease_owner text, lease_epoch bigint,
               lease_expires_at timestamptz, stop_requested_at timestamptz, last_updated timestamptz,
               read_count bigint, write_count bigint, filter_count bigint, commit_count bigint,
               skip_count bigint, rollback_count bigint)
language sql
stable
as $$
    select x.id, x.instance_id, i.job_name, i.job_key::text, x.status, x.exit_code, x.exit_message,
           x.current_step, x.params, x.create_time, x.start_time, x.end_time,
           x.resume_count, x.recovery_count, x.handoff_count,
           x.recovery_policy, x.definition_fp::text, x.lease_owner, x.lease_epoch,
           x.lease_expires_at, x.stop_requested_at, x.last_updated,
           coalesce(sum(s.read_count), 0)::bigint, coalesce(sum(s.write_count), 0)::bigint,
           coalesce(sum(s.filter_count), 0)::bigint, coalesce(sum(s.commit_count), 0)::bigint,
           coalesce(sum(s.read_skip_count + s.process_skip_count + s.write_skip_count), 0)::bigint,
           coalesce(sum(s.rollback_count), 0)::bigint
      from (select pgbatch._batch_known_execution($1) as id) k
      join pgbatch.job_execution x on x.id = k.id
      join pgbatch.job_instance i on i.id = x.instance_id
      left join pgbatch.step_execution s on s.job_execution_id = x.id
     group by x.id, i.id
$$;

-- ==== batch/privileges/038_batch_history_access.sql ====
-- Who may execute the batch history functions added with retention
-- (docs/roles.md): the maintenance leader (a worker) purges old history;
-- operators read one execution.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('purge_batch_history', 'worker', true),
    ('get_execution',       'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
