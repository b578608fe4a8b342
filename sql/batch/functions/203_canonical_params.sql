-- The canonical JSON text of the identifying parameters of `params` (the
-- text job_key hashes): keys sorted, each {"t": type, "v": normalised value},
-- no whitespace. InvalidJobParameters (PB040) for bad parameters.
create or replace function pgbatch.canonical_params(params jsonb)
returns text
language sql
immutable
as $$
    select (pgbatch._batch_params(params)).identifying_text
$$;
