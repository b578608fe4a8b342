-- ack_ids: the fast path of ack_many for acks without effects. Settles
-- job_ids[i] with claim_tokens[i] for every i, all in one transaction and
-- one set-wise statement, and returns a row only for the entries that were
-- NOT acked, in input order: status 'claim_lost' (PB001), 'not_found'
-- (PB003) or 'error' (any other SQLSTATE; that entry alone is not acked). No
-- row means every entry was acked. An entry whose token already acked its
-- job (a retry after a connection lost at COMMIT) counts as acked.
-- The arrays must be one-dimensional, indexed from 1, of the same length and
-- without NULLs (InvalidArgument, PB007).
create or replace function pgbatch.ack_ids(job_ids uuid[], claim_tokens uuid[])
returns setof pgbatch.ack_outcome
language plpgsql
as $$
declare
    v_missed integer[];
    i        integer;
begin
    if job_ids is null or claim_tokens is null then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must not be NULL');
    end if;
    if array_ndims(job_ids) > 1 or array_ndims(claim_tokens) > 1
       or array_lower(job_ids, 1) <> 1 or array_lower(claim_tokens, 1) <> 1 then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must be one-dimensional arrays indexed from 1');
    end if;
    if cardinality(job_ids) <> cardinality(claim_tokens) then
        perform pgbatch._raise('PB007', format('job_ids has %s entries but claim_tokens has %s',
                                               cardinality(job_ids), cardinality(claim_tokens)));
    end if;
    if array_position(job_ids, null) is not null or array_position(claim_tokens, null) is not null then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must not contain NULLs');
    end if;
    perform pgbatch._durable_commit();

    v_missed := pgbatch._ack_plain(job_ids, claim_tokens);
    if v_missed is null then
        return;
    end if;
    -- the rest one by one, each on its own (ack() reports why the token does
    -- not hold its job)
    foreach i in array v_missed loop
        begin
            perform pgbatch.ack(job_ids[i], claim_tokens[i]);
        exception
            when sqlstate 'PB001' then
                return next row(job_ids[i], 'claim_lost', 'PB001', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when sqlstate 'PB003' then
                return next row(job_ids[i], 'not_found', 'PB003', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when others then
                return next row(job_ids[i], 'error', sqlstate, sqlerrm, null::uuid[])::pgbatch.ack_outcome;
        end;
    end loop;
end
$$;
