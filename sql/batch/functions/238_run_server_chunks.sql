-- run_server_chunks: the chunk loop of a step run in the server, inside the
-- database (docs/batch.md, "Steps run in the server"). A procedure: it commits
-- each chunk itself, so CALL it outside a transaction block (autocommit).
--
-- Each chunk is one statement and one durable COMMIT: the statement (built by
-- the worker from the step's SqlReader and TableWriter, pgbatch.batch.pushdown)
-- inserts the next page after the cursor of `context`, computes the new
-- context and calls commit_chunk (checkpoint, counters, fence, lease, stop and
-- pause read-back) for sequence number `chunk_seq`. Its parameters are $1 (the
-- committed context, jsonb) and $2 (the expected sequence number, bigint); it
-- returns one row: rows read, rows with a NULL key, the new context, then
-- commit_chunk's columns. `first_statement` (when not null) runs the first
-- chunk (a step with no cursor yet), `next_statement` every other one.
--
-- It stops after the chunk whose commit reads back a stop or pause request
-- (outcome 'control'), after `max_seconds` of chunks (outcome 'time': the
-- worker checks its own shutdown and claim, then calls again), at the end of
-- the input (a page of 0 rows, rolled back: outcome 'end'), or at a row with a
-- NULL key (rolled back: outcome 'null_keys'). On return `context` and
-- `chunk_seq` are those of the last chunk committed and `chunks` says how many
-- this call committed. An error (a lost claim, the fence, a failed insert)
-- rolls back the chunk in progress and ends the call; the chunks before it
-- stay committed, and the worker reads the checkpoint back from the step.
--
-- SECURITY INVOKER: the statements run with the caller's rights (the worker's
-- role reads the reader's tables and writes the writer's), commit_chunk with
-- its own. It sets client_connection_check_interval to 250 ms for the
-- session (PostgreSQL arms that check when a command starts, so it holds from
-- the next call on; the worker sets it before its first call): while a call
-- runs, a client that is gone ends its backend, so a worker that dies does
-- not leave its backend committing chunks.
create or replace procedure pgbatch.run_server_chunks(first_statement text, next_statement text,
    inout context jsonb, inout chunk_seq bigint, max_seconds double precision default 1,
    inout outcome text default null, inout chunks integer default 0,
    inout stop_requested boolean default false, inout pause_requested boolean default false)
language plpgsql
as $$
declare
    v_until    timestamptz;
    v_prepared boolean := false;
    v_read     bigint;
    v_nulls    bigint;
    v_context  jsonb;
    v_seq      bigint;
    v_applied  boolean;
    v_status   text;
    v_stop     boolean;
    v_pause    boolean;
begin
    if next_statement is null or context is null or jsonb_typeof(context) <> 'object'
       or chunk_seq is null or chunk_seq < 0 then
        perform pgbatch._raise('PB007', 'invalid argument: next_statement, a context object and'
                               || ' chunk_seq >= 0 are required');
    end if;
    if max_seconds is null or not (max_seconds > 0 and max_seconds <= 3600) then
        perform pgbatch._raise('PB007', 'invalid argument: max_seconds must be > 0 and <= 3600');
    end if;
    perform set_config('client_connection_check_interval', '250ms', false);
    v_until := clock_timestamp() + make_interval(secs => max_seconds);
    outcome := null; chunks := 0; stop_requested := false; pause_requested := false;
    if exists (select from pg_catalog.pg_prepared_statements p where p.name = 'pgbatch_server_chunk') then
        execute 'deallocate pgbatch_server_chunk';  -- left by a call that ended in an error
    end if;
    loop
        if chunks = 0 and first_statement is not null then
            execute first_statement
               into v_read, v_nulls, v_context, v_seq, v_applied, v_status, v_stop, v_pause
              using context, chunk_seq;
        else
            if not v_prepared then
                -- planned once per call: the same statement for every chunk but the first
                execute 'prepare pgbatch_server_chunk (jsonb, bigint) as ' || next_statement;
                v_prepared := true;
            end if;
            execute format('execute pgbatch_server_chunk (%L, %s)', context, chunk_seq)
               into v_read, v_nulls, v_context, v_seq, v_applied, v_status, v_stop, v_pause;
        end if;
        if v_nulls > 0 then
            rollback;
            outcome := 'null_keys';
            exit;
        end if;
        if v_read = 0 then
            rollback;  -- the end of the input commits nothing
            outcome := 'end';
            exit;
        end if;
        if v_seq is null or not v_applied then
            perform pgbatch._raise('PB048', format('chunk %s was committed by another call', chunk_seq));
        end if;
        context := v_context;
        chunk_seq := v_seq;
        chunks := chunks + 1;
        stop_requested := v_stop;
        pause_requested := v_pause;
        commit;
        if v_stop or v_pause then
            outcome := 'control';
            exit;
        end if;
        if clock_timestamp() >= v_until then
            outcome := 'time';
            exit;
        end if;
    end loop;
    if v_prepared then
        execute 'deallocate pgbatch_server_chunk';
    end if;
end
$$;
