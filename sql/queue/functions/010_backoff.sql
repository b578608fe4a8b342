-- Retry delay after `attempt` failed attempts: exponential (base * 2^(attempt-1)),
-- capped at `cap`, with "equal jitter": uniformly in [d/2, d]. Never above cap.
-- base and cap: not NULL, not negative, at most limits()
-- max_run_at_offset_seconds (InvalidArgument, PB007). A NULL or non-positive
-- attempt counts as the first.
create or replace function pgbatch.backoff(attempt integer, base interval default '1 second',
                                           cap interval default '1 hour')
returns interval
language plpgsql
volatile
parallel safe
as $$
declare
    v_d double precision;
begin
    perform pgbatch._check(pgbatch._backoff_problem(base, cap));
    -- in seconds: base * 2^39 may exceed the interval range, a double does not
    v_d := least(extract(epoch from cap)::double precision,
                 extract(epoch from base)::double precision
                   * power(2, least(greatest(coalesce(attempt, 1), 1) - 1, 40)));
    return make_interval(secs => v_d / 2 + v_d / 2 * random());
end
$$;
