-- list_tasks: the task registry (every task a worker registered), by name;
-- one task when `name` is given.
create or replace function pgbatch.list_tasks(name text default null)
returns setof pgbatch.task_registry
language sql
stable
as $$
    select * from pgbatch.task_registry r
     where list_tasks.name is null or r.name = list_tasks.name
     order by r.name
$$;
