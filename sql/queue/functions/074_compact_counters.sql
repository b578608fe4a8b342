-- compact_counters: folds the append-only counter deltas of queue_count into
-- one row per queue. Run by the maintenance loop; safe with concurrent
-- settlements and concurrent compactions. Returns the number of delta rows
-- folded.
create or replace function pgbatch.compact_counters()
returns integer
language plpgsql
as $$
declare
    v_n integer;
begin
    perform pgbatch._relax_commit();
    with gone as (
        delete from pgbatch.queue_count c
         where c.queue in (select c2.queue from pgbatch.queue_count c2 group by c2.queue having count(*) > 1)
        returning c.queue, c.done, c.dead, c.cancelled
    ), folded as (
        insert into pgbatch.queue_count (queue, done, dead, cancelled)
        select g.queue, sum(g.done), sum(g.dead), sum(g.cancelled) from gone g group by g.queue
        returning 1
    )
    select count(*) into v_n from gone;
    return v_n;
end
$$;
