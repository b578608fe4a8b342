-- One row per queue that was ever used, paused or configured.
-- Claims read `paused` (a primary-key lookup), enqueues read `notify`.
-- `announced_until` is the due-job announcement watermark (announce_due()).
create table pgbatch.queue (
    name            text primary key,
    paused          boolean     not null default false,
    notify          boolean     not null default true,
    announced_until timestamptz not null default now(),
    created_at      timestamptz not null default now()
);
