-- Key/value store written by ack effects (kv_put / kv_delete), read with kv_get().
create table pgbatch.kv (
    key        text        primary key,
    value      jsonb       not null,
    updated_at timestamptz not null default now()
);
