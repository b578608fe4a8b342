-- "Run again": `params` with the identifying int parameter run_id set to one
-- more than the highest run_id of any instance of `job_name` (1 for the
-- first). Pass the result to launch_job.
create or replace function pgbatch.next_instance(job_name text, params jsonb default '{}')
returns jsonb
language sql
stable
as $$
    select coalesce(next_instance.params, '{}') || jsonb_build_object('run_id', jsonb_build_object(
        'type', 'int', 'identifying', true,
        'value', coalesce((select max((i.identifying_params -> 'run_id' ->> 'v')::numeric)
                             from pgbatch.job_instance i
                            where i.job_name = next_instance.job_name
                              and i.identifying_params -> 'run_id' ->> 't' = 'int'), 0) + 1))
$$;
