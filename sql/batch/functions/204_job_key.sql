-- The job key of `params`: lowercase hex sha256 of the UTF-8 bytes of
-- canonical_params(params). Launches from psql and from Python compute it
-- here, so equal identifying parameters reach the same job instance.
create or replace function pgbatch.job_key(params jsonb)
returns text
language sql
immutable
as $$
    select encode(sha256(convert_to(pgbatch.canonical_params(params), 'UTF8')), 'hex')
$$;
