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
