-- Retry delay after `attempt` failed attempts: exponential (base * 2^(attempt-1)),
-- capped at `cap`, with "equal jitter": uniformly in [d/2, d]. Never above cap.
create or replace function pgbatch.backoff(attempt integer, base interval default '1 second',
                                           cap interval default '1 hour')
returns interval
language sql
volatile
parallel safe
as $$
    select d / 2 + d / 2 * random()
      from (select least(cap, base * power(2, least(greatest(attempt, 1) - 1, 40))::double precision) as d) x
$$;
