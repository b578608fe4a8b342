-- pgbatch migration 0012_task_registry: the task registry (workers record their
-- tasks' options; enqueue_task enqueues by task name with them, for the CLI and SQL)
-- and drop_queue (remove an empty queue). New objects only: nothing existing changes.
-- FROZEN: never edit this file after release; 0012_task_registry.py pins its sha256.

-- The task registry: the options of every task a worker has (App tasks), so
-- that enqueues that name a task without the App's code (pgbatch enqueue
-- --task, pgbatch.enqueue_task from SQL) get the task's queue, priority and
-- max_attempts. Workers upsert their tasks at every start (register_tasks);
-- a row stays when a task leaves the code (registered_at says how current it is).
-- `options` holds the rest of the task's options, for reading (lease, timeout,
-- backoff, ...).
create table pgbatch.task_registry (
    name          text        primary key,
    queue         text        not null,
    priority      integer     not null default 0,
    max_attempts  integer     not null,
    options       jsonb       not null default '{}',
    registered_by text        not null,
    registered_at timestamptz not null default now()
);

-- drop_queue: removes a queue that holds no live job: its row (paused, notify
-- switches) and its counters of archived jobs, so it leaves queue_stats().
-- Archived jobs of the queue stay readable (get_job, list_jobs) until swept.
-- Refused, changing nothing: a queue pgbatch has no trace of (InvalidArgument,
-- PB007), a queue with pending, scheduled or claimed jobs (InvalidState, PB004).
-- An enqueue into the queue later creates it again.
create or replace function pgbatch.drop_queue(queue text)
returns void
language plpgsql
as $$
declare
    v_live bigint;
begin
    perform pgbatch._check_queue(queue);
    perform 1 from pgbatch.queue q where q.name = drop_queue.queue for update;
    if not found and not exists (select 1 from pgbatch.queue_count c
                                  where c.queue = drop_queue.queue) then
        perform pgbatch._raise('PB007', format('no queue named %L', queue));
    end if;
    select count(*) into v_live from pgbatch.job j where j.queue = drop_queue.queue;
    if v_live > 0 then
        perform pgbatch._raise('PB004', format('queue %L holds %s live jobs (pending, scheduled '
                                               'or claimed): only an empty queue can be dropped',
                                               queue, v_live));
    end if;
    delete from pgbatch.queue q where q.name = drop_queue.queue;
    delete from pgbatch.queue_count c where c.queue = drop_queue.queue;
end
$$;

-- register_tasks: a worker records the options of its tasks in the task
-- registry (upsert by name; what enqueue_task reads). `tasks` is a JSON array
-- of {"name", "queue", "priority", "max_attempts", "options"} (options: any
-- JSON object). Returns how many were registered. Refused, changing nothing
-- (InvalidArgument, PB007): not an array, a name that is not 1 to
-- limits() max_kv_key_length characters, a bad queue name (InvalidQueueName,
-- PB005), max_attempts below 1, a priority or max_attempts that is not an
-- integer.
create or replace function pgbatch.register_tasks(node_id text, tasks jsonb)
returns integer
language plpgsql
as $$
declare
    t      jsonb;
    v_name text;
    n      integer := 0;
begin
    if tasks is null or jsonb_typeof(tasks) <> 'array' then
        perform pgbatch._raise('PB007', 'tasks must be a JSON array of task objects');
    end if;
    if node_id is null or length(node_id) not between 1 and pgbatch._limit('max_node_id_length') then
        perform pgbatch._raise('PB007', format('node_id must be 1 to %s characters',
                                               pgbatch._limit('max_node_id_length')));
    end if;
    for t in select value from jsonb_array_elements(tasks) loop
        if jsonb_typeof(t) <> 'object' then
            perform pgbatch._raise('PB007', format('a task must be a JSON object, got %s', t));
        end if;
        v_name := t ->> 'name';
        if v_name is null or length(v_name) not between 1 and pgbatch._limit('max_kv_key_length') then
            perform pgbatch._raise('PB007', format('a task name must be 1 to %s characters, got %s',
                                                   pgbatch._limit('max_kv_key_length'),
                                                   coalesce(t -> 'name', 'null')));
        end if;
        perform pgbatch._check_queue(t ->> 'queue');
        if jsonb_typeof(t -> 'priority') is distinct from 'number'
           or jsonb_typeof(t -> 'max_attempts') is distinct from 'number'
           or (t ->> 'priority')::numeric <> trunc((t ->> 'priority')::numeric)
           or (t ->> 'max_attempts')::numeric <> trunc((t ->> 'max_attempts')::numeric)
           or (t ->> 'priority')::numeric not between -2147483648 and 2147483647
           or (t ->> 'max_attempts')::numeric not between 1 and 2147483647 then
            perform pgbatch._raise('PB007', format('task %L: priority must be an integer and '
                                                   'max_attempts an integer of at least 1', v_name));
        end if;
        if t ? 'options' and jsonb_typeof(t -> 'options') <> 'object' then
            perform pgbatch._raise('PB007', format('task %L: options must be a JSON object', v_name));
        end if;
        insert into pgbatch.task_registry as r
               (name, queue, priority, max_attempts, options, registered_by, registered_at)
        values (v_name, t ->> 'queue', (t ->> 'priority')::integer, (t ->> 'max_attempts')::integer,
                coalesce(t -> 'options', '{}'), node_id, pgbatch.now())
        on conflict (name) do update
           set queue = excluded.queue, priority = excluded.priority,
               max_attempts = excluded.max_attempts, options = excluded.options,
               registered_by = excluded.registered_by, registered_at = excluded.registered_at;
        n := n + 1;
    end loop;
    return n;
end
$$;

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

-- enqueue_task: enqueues a job of an App task by name, with the task's
-- options from the task registry (queue, priority, max_attempts) wherever the
-- caller gives none: what a Python enqueue of the task does. The payload is
-- {"task": task, "kwargs": kwargs}. Every other argument is enqueue()'s.
-- Refused, changing nothing: a task the registry does not have when no queue
-- is given (InvalidArgument, PB007: no worker that has the task has started
-- yet), kwargs that are not a JSON object (InvalidPayload, PB006), and
-- everything enqueue() refuses.
create or replace function pgbatch.enqueue_task(
    task         text,
    kwargs       jsonb       default '{}',
    queue        text        default null,
    run_at       timestamptz default null,
    priority     integer     default null,
    dedup_key    text        default null,
    max_attempts integer     default null,
    id_override  uuid        default null
)
returns uuid
language plpgsql
as $$
declare
    r pgbatch.task_registry;
begin
    if task is null or length(task) = 0 then
        perform pgbatch._raise('PB007', 'task must be a task name (module.function)');
    end if;
    if kwargs is not null and jsonb_typeof(kwargs) <> 'object' then
        perform pgbatch._raise('PB006', format('kwargs must be a JSON object, got %s',
                                               jsonb_typeof(kwargs)));
    end if;
    select * into r from pgbatch.task_registry t where t.name = enqueue_task.task;
    if not found and queue is null then
        perform pgbatch._raise('PB007', format(
            'task %L is not in the task registry (a worker that has it registers it when it '
            'starts); give queue => to enqueue it anyway', task));
    end if;
    return pgbatch.enqueue(
        coalesce(enqueue_task.queue, r.queue),
        jsonb_build_object('task', enqueue_task.task, 'kwargs', coalesce(kwargs, '{}')),
        run_at,
        coalesce(enqueue_task.priority, r.priority, 0),
        dedup_key,
        coalesce(enqueue_task.max_attempts, r.max_attempts,
                 (pgbatch.limits() ->> 'default_max_attempts')::integer),
        id_override);
end
$$;

-- Who may execute the task registry's functions and drop_queue (see
-- sql/core/schema/090_function_access.sql): workers register their tasks;
-- producers read the registry and enqueue by task name; admins drop queues.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('register_tasks', 'worker',   true),
    ('list_tasks',     'producer', true),
    ('enqueue_task',   'producer', true),
    ('drop_queue',     'admin',    true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

-- Re-apply the privileges step: the new functions get their security definer,
-- search_path and grants (docs/roles.md).
select pgbatch._apply_privileges();
