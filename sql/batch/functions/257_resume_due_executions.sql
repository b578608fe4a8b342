-- The timed-resume sweep (BATCH.md §3 T12, §7): resumes up to `batch_size`
-- PAUSED executions whose resume_at has come (resume_at <= pgbatch.now()),
-- oldest first, each with _batch_resume (event `resumed`, detail by
-- 'schedule'). The rows are taken FOR UPDATE SKIP LOCKED and checked again
-- under the lock, so many nodes sweeping at once resume each execution
-- exactly once. An execution whose job definition changed while it was
-- paused is left PAUSED for an operator (resume_execution with
-- allow_definition_change). Returns the number resumed. `batch_size`: 1 to
-- 10000 (InvalidArgument, PB007).
create or replace function pgbatch.resume_due_executions(batch_size integer default 100)
returns integer
language plpgsql
as $$
declare
    v   record;
    r   record;
    v_n integer := 0;
begin
    if resume_due_executions.batch_size is null or resume_due_executions.batch_size not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid batch_size: must be 1 to 10000');
    end if;
    for v in
        select e.id from pgbatch.job_execution e
         where e.status = 'PAUSED' and e.resume_at is not null and e.resume_at <= pgbatch.now()
           and e.definition_fp = (select d.fingerprint from pgbatch.job_definition d
                                   where d.job_name = (select i.job_name from pgbatch.job_instance i
                                                        where i.id = e.instance_id)
                                   order by d.last_registered_at desc, d.fingerprint limit 1)
         order by e.resume_at, e.id
         limit resume_due_executions.batch_size
         for update of e skip locked
    loop
        select * into r from pgbatch._batch_resume(v.id, null, false, 'schedule');
        if r.applied then
            v_n := v_n + 1;
        end if;
    end loop;
    return v_n;
end
$$;
