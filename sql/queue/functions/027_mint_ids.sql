-- The ids of a call's `n` jobs: `ids` (NULL: all NULL) with every NULL
-- replaced by a fresh time-ordered UUID (RFC 9562 version 7), in order. One
-- random draw per call, not per job: the jobs of one call share the
-- millisecond and 12 random bits (rand_a) and take consecutive values of a
-- counter in rand_b that starts at a random 60-bit value (RFC 9562 section
-- 6.2, method 2, "monotonic random"), so they are unique, ordered as the
-- call's requests, and cheap to make. (A strong random draw per job cost more
-- than the insert of its row; docs/design.md, "Enqueue costs".)
-- Layout: 48 bits Unix ms | 0111 | rand_a 12 | 10 | 0 | counter 61 bits: a
-- random 60-bit start plus the job's ordinal never reaches the variant bits.
create or replace function pgbatch._mint_ids(n integer, ids uuid[] default null)
returns uuid[]
language sql
volatile
parallel safe
as $$
    select coalesce(case
        when ids is null then
            (select array_agg((s.prefix || to_hex(s.base + g.ord))::uuid order by g.ord)
               from generate_series(1, n) as g(ord))
        else
            (select array_agg(coalesce(u.id, (s.prefix || to_hex(s.base + u.ord))::uuid) order by u.ord)
               from unnest(ids) with ordinality as u(id, ord))
        end, '{}')
      from (select lpad(to_hex(floor(extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0')
                   || '7' || substr(r.hex, 14, 3) as prefix,
                   (('x' || substr(r.hex, 17, 16))::bit(64)::bigint & 1152921504606846975)
                   | x'8000000000000000'::bit(64)::bigint as base
              from (select replace(gen_random_uuid()::text, '-', '') as hex) r) s
$$;
