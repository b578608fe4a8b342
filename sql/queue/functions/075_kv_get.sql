-- kv_get: the value that ack effects stored under `key`, or NULL.
create or replace function pgbatch.kv_get(key text)
returns jsonb
language sql
stable
as $$ select kv.value from pgbatch.kv kv where kv.key = kv_get.key $$;
