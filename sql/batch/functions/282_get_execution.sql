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
