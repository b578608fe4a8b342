-- Refuses a `resume_at` (the time a timed pause resumes by itself) that is
-- infinite, not after pgbatch.now(), or further ahead than limits()
-- max_run_at_offset_seconds: InvalidResumeAt (PB050). NULL (no timed resume)
-- passes.
create or replace function pgbatch._batch_check_resume_at(resume_at timestamptz)
returns void
language plpgsql
stable
as $$
declare
    v_now timestamptz := pgbatch.now();
begin
    if _batch_check_resume_at.resume_at is null then
        return;
    end if;
    if not isfinite(_batch_check_resume_at.resume_at) then
        perform pgbatch._raise('PB050', format('invalid resume_at: %s, must be a finite time',
                                               _batch_check_resume_at.resume_at));
    end if;
    if _batch_check_resume_at.resume_at <= v_now then
        perform pgbatch._raise('PB050', format('invalid resume_at: %s is not after now (%s)',
                                               _batch_check_resume_at.resume_at, v_now),
                               'a timed pause resumes in the future; resume_execution() resumes now');
    end if;
    if _batch_check_resume_at.resume_at > v_now + pgbatch._limit_interval('max_run_at_offset_seconds') then
        perform pgbatch._raise('PB050', format('invalid resume_at: %s is more than %s from now (%s)',
                                               _batch_check_resume_at.resume_at,
                                               justify_hours(pgbatch._limit_interval('max_run_at_offset_seconds')),
                                               v_now));
    end if;
end
$$;
