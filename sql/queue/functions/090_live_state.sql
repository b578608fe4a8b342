-- The state an operator sees for a live job at time `at`: a pending job whose
-- run_at is still ahead is 'scheduled'; otherwise its stored state (pending or
-- claimed). The one definition of "scheduled", used by queue_stats(),
-- get_job() and list_jobs(); simple enough to be inlined into their queries.
create or replace function pgbatch._live_state(state text, run_at timestamptz, at timestamptz)
returns text
language sql
immutable
parallel safe
as $$
    select case when _live_state.state = 'pending' and _live_state.run_at > _live_state.at
                then 'scheduled' else _live_state.state end
$$;
