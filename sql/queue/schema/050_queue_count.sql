-- Counters of archived jobs per queue as append-only deltas: settling jobs of
-- one queue concurrently never contends on a shared counter row. The
-- maintenance loop folds the deltas (compact_counters()); queue_stats() sums them.
create table pgbatch.queue_count (
    id        bigint generated always as identity primary key,
    queue     text    not null,
    done      bigint  not null default 0,
    dead      bigint  not null default 0,
    cancelled bigint  not null default 0
);
create index queue_count_queue_idx on pgbatch.queue_count (queue);
