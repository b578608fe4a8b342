-- The NOTIFY channel of a queue: 'pgbatch_' + a readable prefix of the name
-- (lowercase letters, digits, underscores) + '_' + 128 bits of its SHA-256.
-- At most 63 bytes for any queue name, lowercase, so LISTEN needs no quoting
-- rules beyond an identifier; two different names never share a channel.
create or replace function pgbatch.channel_name(queue text)
returns text
language sql
immutable
strict
parallel safe
as $$
    select 'pgbatch_'
        || left(regexp_replace(lower(queue), '[^a-z0-9_]', '', 'g'), 22)
        || '_'
        || left(encode(sha256(convert_to(queue, 'UTF8')), 'hex'), 32)
$$;
