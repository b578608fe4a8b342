-- The scheduler invariant I8 of BATCH.md §8, as far as the rows can show it,
-- as one row per violation (invariant, detail); no row when it holds. Tests
-- call it after every scheduler test (tests/schedule_helpers.py).
--   I8.key       at most one ledger row per (schedule, source, fire_at) and per
--                (schedule, request_id)
--   I8.run       a fired row has exactly one run (queue job or batch
--                execution) and names it; a row not fired has none; the run
--                exists and names the same fire; no fire has two queue jobs
--   I8.watermark no fire of source 'schedule' lies after its schedule's
--                watermark; the latest one is the watermark; the next due
--                occurrence lies after the watermark (nothing at or before
--                the watermark is due again)
create or replace function pgbatch._schedule_invariant_violations()
returns table (invariant text, detail text)
language sql
stable
as $$
    select 'I8.key', format('fire %s/%s/%s is recorded %s times', f.schedule_id, f.source, f.fire_at, count(*))
      from pgbatch.schedule_fire f
     group by f.schedule_id, f.source, f.fire_at having count(*) > 1
    union all
    select 'I8.key', format('request %s of schedule %s is recorded %s times', f.request_id, f.schedule_id, count(*))
      from pgbatch.schedule_fire f
     where f.request_id is not null
     group by f.schedule_id, f.request_id having count(*) > 1
    union all
    select 'I8.run', format('fire %s/%s/%s (%s): %s', f.schedule_id, f.source, f.fire_at, f.outcome, p.problem)
      from pgbatch.schedule_fire f
     cross join lateral (values (
         case
           when f.outcome = 'fired' and num_nonnulls(f.job_id, f.job_execution_id) <> 1
             then 'fired without exactly one run'
           when f.outcome <> 'fired' and num_nonnulls(f.job_id, f.job_execution_id) <> 0
             then 'not fired but has a run'
           when f.job_id is not null
                and (select count(*)
                       from (select j.payload from pgbatch.job j where j.id = f.job_id
                             union all
                             select a.payload from pgbatch.job_archive a where a.id = f.job_id) r
                      where r.payload -> 'schedule' ->> 'id' = f.schedule_id
                        and r.payload -> 'schedule' ->> 'source' = f.source
                        and (r.payload -> 'schedule' ->> 'fire_at')::timestamptz = f.fire_at) <> 1
             then format('queue job %s missing or not naming this fire', f.job_id)
           when f.job_execution_id is not null
                and not exists (select 1 from pgbatch.job_execution x
                                 where x.id = f.job_execution_id
                                   and x.schedule_id = f.schedule_id and x.fire_at = f.fire_at)
             then format('execution %s missing or not naming this fire', f.job_execution_id)
         end)) p(problem)
     where p.problem is not null
    union all
    select 'I8.run', format('fire %s/%s/%s has %s queue jobs', r.sid, r.src, r.fat, count(*))
      from (select j.payload -> 'schedule' ->> 'id' as sid, j.payload -> 'schedule' ->> 'source' as src,
                   j.payload -> 'schedule' ->> 'fire_at' as fat
              from pgbatch.job j where j.payload ? 'schedule' and jsonb_typeof(j.payload -> 'schedule') = 'object'
            union all
            select a.payload -> 'schedule' ->> 'id', a.payload -> 'schedule' ->> 'source',
                   a.payload -> 'schedule' ->> 'fire_at'
              from pgbatch.job_archive a where a.payload ? 'schedule' and jsonb_typeof(a.payload -> 'schedule') = 'object') r
     where r.sid is not null and r.src is not null and r.fat is not null
     group by r.sid, r.src, r.fat having count(*) > 1
    union all
    select 'I8.watermark', format('schedule %s: fire %s lies after its watermark %s', s.id, f.fire_at, s.last_fire_at)
      from pgbatch.schedule s join pgbatch.schedule_fire f on f.schedule_id = s.id
     where f.source = 'schedule' and (s.last_fire_at is null or f.fire_at > s.last_fire_at)
    union all
    select 'I8.watermark', format('schedule %s: watermark %s is not its latest fire %s', s.id, s.last_fire_at, l.latest)
      from pgbatch.schedule s
     cross join lateral (select max(f.fire_at) latest from pgbatch.schedule_fire f
                          where f.schedule_id = s.id and f.source = 'schedule') l
     where l.latest is not null and l.latest is distinct from s.last_fire_at
    union all
    select 'I8.watermark', format('schedule %s: next due %s is not after its watermark %s', s.id, s.next_due_at, s.last_fire_at)
      from pgbatch.schedule s
     where s.next_due_at <= s.last_fire_at
$$;
