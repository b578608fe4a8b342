-- Moves a job that has left the live table (the caller deleted it) into the
-- archive as done, dead or cancelled, and counts it for queue_stats().
-- An archived record with the same id can only have been left by an older
-- pgbatch that let an ack's follow-up reuse the acked job's id (today every
-- entry point refuses such ids): it is replaced, and its count taken back, so
-- settling, reaping and cancelling that job never fail on it.
create or replace function pgbatch._archive(r pgbatch.job, state text, token uuid, result jsonb,
                                            last_error jsonb default null)
returns void
language plpgsql
as $$
declare
    v_queue text;
    v_state text;
begin
    delete from pgbatch.job_archive a where a.id = r.id returning a.queue, a.state into v_queue, v_state;
    if found then
        insert into pgbatch.queue_count (queue, done, dead, cancelled)
        values (v_queue, -(v_state = 'done')::integer, -(v_state = 'dead')::integer,
                -(v_state = 'cancelled')::integer);
    end if;
    insert into pgbatch.job_archive
    select (pgbatch._archive_row(r, _archive.state, token, result, last_error, pgbatch.now())).*;
    insert into pgbatch.queue_count (queue, done, dead, cancelled)
    values (r.queue,
            (_archive.state = 'done')::integer,
            (_archive.state = 'dead')::integer,
            (_archive.state = 'cancelled')::integer);
end
$$;
