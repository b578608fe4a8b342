-- resume_queue: claims on the queue work again; listeners are told how many
-- jobs are claimable now.
create or replace function pgbatch.resume_queue(queue text)
returns void
language plpgsql
as $$
declare
    v_ready bigint;
begin
    perform pgbatch._check_queue(queue);
    insert into pgbatch.queue as q (name, paused) values (resume_queue.queue, false)
    on conflict (name) do update set paused = false;
    select count(*) into v_ready from pgbatch.job j
     where j.queue = resume_queue.queue and j.state = 'pending' and j.run_at <= pgbatch.now();
    perform pgbatch._announce(resume_queue.queue, v_ready);
end
$$;
