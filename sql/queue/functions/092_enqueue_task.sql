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
